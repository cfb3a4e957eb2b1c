"""Signing the entries of one write together, on every core.

Every entry carries two Ed25519 signatures, the costliest step of a write once a batch shares
one fsync. ``cryptography`` releases the GIL while it signs, so a batch built on the event
loop (Automerge change, encryption, metadata: Python, one core) is signed by the process's
crypto threads (the verification pool, ``store.verify``) while the loop waits, and both cores
sign. Small writes (a single document) sign inline: handing two signatures to a thread costs
more than making them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from mindood.db.entries import UnsignedEntry
from store.entry import StoreEntry
from store.verify import crypto_executor

#: Entries signed per task: a few milliseconds of work, so the workers share a batch evenly
#: and the hand-off to a thread is amortised.
SIGN_SLICE = 48
#: Batches up to this many unsigned entries are signed on the caller's thread.
SIGN_INLINE = 8


def _sign_slice(items: Sequence[UnsignedEntry], sign: Callable[[bytes], bytes]) -> list[StoreEntry]:
    return [item.signed(sign) for item in items]


class EntryBatch:
    """The entries one write stores with a single ``put_entries``, signed together.

    ``add`` takes an entry already signed or an ``UnsignedEntry``; ``signed`` gives them all
    signed, in the order added, the unsigned ones signed by the crypto threads (inline when
    they are few). ``sign`` (the author's ``Signer.sign``) thus runs on worker threads and must
    be thread-safe (an Ed25519 key object is). Slices are not started while the batch is still
    being built: the builder holds the GIL almost throughout, and a worker waiting for it after
    every signature made the batch slower (measured), not faster.
    """

    __slots__ = ("_items", "_sign", "sign_now")

    def __init__(self, sign: Callable[[bytes], bytes], expected: int | None = None) -> None:
        self._sign = sign
        self._items: list[StoreEntry | UnsignedEntry] = []
        #: For a batch ``expected`` to be small (it would be signed inline anyway), the signing
        #: function its builder should sign each entry with as it seals it, so the entry's
        #: metadata is built once (``seal_doc_entry``); None for a batch the pool signs.
        self.sign_now = sign if expected is not None and expected <= SIGN_INLINE else None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: StoreEntry | UnsignedEntry) -> None:
        self._items.append(item)

    async def signed(self) -> list[StoreEntry]:
        """Every entry of the batch with its signatures, in the order added."""
        unsigned = [item for item in self._items if isinstance(item, UnsignedEntry)]
        if len(unsigned) <= SIGN_INLINE:
            made = _sign_slice(unsigned, self._sign)
        else:
            loop = asyncio.get_running_loop()
            pool = crypto_executor()
            parts = [unsigned[i : i + SIGN_SLICE] for i in range(0, len(unsigned), SIGN_SLICE)]
            done = await asyncio.gather(
                *(loop.run_in_executor(pool, _sign_slice, part, self._sign) for part in parts)
            )
            made = [entry for part in done for entry in part]
        signed = iter(made)
        return [next(signed) if isinstance(item, UnsignedEntry) else item for item in self._items]


__all__ = ["SIGN_INLINE", "SIGN_SLICE", "EntryBatch"]
