"""A writer process for the on-disk store's crash and multi-process tests.

    python -m tests.crashwriter PATH --batches N --batch-size K [--tag T] [--purge-every M]

Puts ``N`` batches of ``K`` fresh entries into the store at ``PATH`` and prints one line per
acknowledged entry (``ACK <id> <content_hash>``) as soon as its put returns, flushing each
line, so a test that SIGKILLs this process knows exactly which writes were acknowledged. With
``--purge-every M`` it also purges every M-th batch's document, printing ``PURGING <doc_id>``
before and ``PURGED <doc_id>`` after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from store.ids import generate_doc_id
from store.ondisk import OnDiskStore, OnDiskStoreOptions
from tests.entries import Author


async def run(args: argparse.Namespace) -> None:
    store = await OnDiskStore.open(Path(args.path), OnDiskStoreOptions())
    author = Author()
    out = sys.stdout
    print("READY", flush=True)
    try:
        for number in range(args.batches):
            doc_id = generate_doc_id(args.tag)
            size = args.payload
            batch = [author.entry(doc_id, payload=os.urandom(size)) for _ in range(args.batch_size)]
            await store.put_entries(batch)
            out.write("".join(f"ACK {e.id} {e.metadata.content_hash}\n" for e in batch))
            out.flush()
            if args.purge_every and number % args.purge_every == args.purge_every - 1:
                out.write(f"PURGING {doc_id}\n")  # from here on the document may be gone
                out.flush()
                await store.purge_doc_history(doc_id)
                out.write(f"PURGED {doc_id}\n")
                out.flush()
    finally:
        await store.close()
    print("DONE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--payload", type=int, default=512)
    parser.add_argument("--tag", default="w")
    parser.add_argument("--purge-every", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
