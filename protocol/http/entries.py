"""Entries as the HTTP API carries them: reader wraps and the binary framing (§1.7, §2.6, §3.6).

Payloads served to a reader are wrapped once more for that reader's RSA key: a session key
(one RSA-OAEP wrap per batch, AES-256-GCM with a random 12-byte IV per entry, sync-v5) or the
legacy per-entry hybrid RSA. Wrapping needs only the public key; unwrapping takes a callable
from the node, so ``protocol/`` holds no private key. The framings ``mdb-entries-v2`` and
``mdb-put-v2`` are length-prefixed JSON metadata plus raw payloads.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from protocol.http.checks import (
    DEFAULT_BODY_LIMIT,
    MAX_ENTRY_IDS,
    MAX_PUT_ENTRIES,
    ErrorKind,
    HttpError,
    _meta,
    _obj,
    b64,
    invalid,
    unb64,
)
from store.entry import EntryMetadata, StoreEntry
from store.json_codec import metadata_to_json

BINARY_CONTENT_TYPE = "application/octet-stream"
GET_ENTRIES_FORMAT = "mdb-entries-v2"
PUT_ENTRIES_FORMAT = "mdb-put-v2"
SESSION_KEY_BYTES = 32
IV_BYTES = 12
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


# -- session-key wrap and legacy hybrid RSA (reference-formats §1.7, §3.6) ---------------------
def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def load_rsa_public(pem: str) -> RSAPublicKey:
    """A reader's RSA-OAEP key from PEM; ``HttpError`` if it is not one."""
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise HttpError(ErrorKind.SERVER_ERROR, "the reader's encryption key is unusable") from exc
    if not isinstance(key, RSAPublicKey):
        raise HttpError(ErrorKind.SERVER_ERROR, "the reader's encryption key is not RSA")
    return key


#: Raw RSA-OAEP decryption with the reader's private key (the node implements it); whatever it
#: raises for a blob not meant for that key becomes an ``HttpError``.
Unwrap = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """One served entry under a session key: metadata in clear, ``AES-GCM(key, iv, data)``."""

    metadata: EntryMetadata
    iv: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class SessionBatch:
    """A ``getEntries`` answer in the sync-v5 form: one RSA-wrapped key for the whole batch."""

    wrapped_session_key: bytes
    entries: tuple[SessionEntry, ...]


def seal_session_batch(entries: Sequence[StoreEntry], reader: RSAPublicKey | str) -> SessionBatch:
    """Wrap ``entries`` for ``reader``: a random 32-byte key RSA-wrapped once, a random IV each."""
    key_obj = load_rsa_public(reader) if isinstance(reader, str) else reader
    session_key = os.urandom(SESSION_KEY_BYTES)
    aead = AESGCM(session_key)
    sealed = []
    for entry in entries:
        iv = os.urandom(IV_BYTES)
        sealed.append(
            SessionEntry(entry.metadata, iv, aead.encrypt(iv, entry.encrypted_data, None))
        )
    return SessionBatch(key_obj.encrypt(session_key, _oaep()), tuple(sealed))


def open_session_batch(batch: SessionBatch, unwrap: Unwrap) -> list[StoreEntry]:
    """The entries of a session batch; a wrong key or a tampered payload raises ``HttpError``."""
    if not batch.entries:
        return []
    try:
        session_key = unwrap(batch.wrapped_session_key)
    except Exception as exc:  # the node's RSA code has its own error types: any is "not ours"
        raise HttpError(ErrorKind.SERVER_ERROR, "the session key is not for this reader") from exc
    if len(session_key) != SESSION_KEY_BYTES:
        raise HttpError(ErrorKind.SERVER_ERROR, "the session key has the wrong length")
    aead = AESGCM(session_key)
    out = []
    for item in batch.entries:
        if len(item.iv) != IV_BYTES:
            raise HttpError(ErrorKind.SERVER_ERROR, f"entry {item.metadata.id[:200]}: bad iv")
        try:
            data = aead.decrypt(item.iv, item.payload, None)
        except InvalidTag as exc:
            raise HttpError(
                ErrorKind.SERVER_ERROR, f"entry {item.metadata.id[:200]} does not decrypt"
            ) from exc
        out.append(StoreEntry(item.metadata, data))
    return out


def hybrid_encrypt(data: bytes, reader: RSAPublicKey | str) -> bytes:
    """``u16BE(len(encKey)) || RSA-OAEP(aesKey) || IV || AES-GCM(data)``: legacy per entry."""
    key_obj = load_rsa_public(reader) if isinstance(reader, str) else reader
    aes_key = os.urandom(SESSION_KEY_BYTES)
    wrapped = key_obj.encrypt(aes_key, _oaep())
    iv = os.urandom(IV_BYTES)
    return _U16.pack(len(wrapped)) + wrapped + iv + AESGCM(aes_key).encrypt(iv, data, None)


def hybrid_decrypt(blob: bytes, unwrap: Unwrap) -> bytes:
    """Inverse of ``hybrid_encrypt``; any defect raises ``HttpError``."""
    if len(blob) < _U16.size:
        raise HttpError(ErrorKind.SERVER_ERROR, "hybrid RSA payload is truncated")
    (length,) = _U16.unpack_from(blob)
    body = _U16.size + length
    if len(blob) < body + IV_BYTES + 16:
        raise HttpError(ErrorKind.SERVER_ERROR, "hybrid RSA payload is truncated")
    try:
        aes_key = unwrap(blob[_U16.size : body])
        return AESGCM(aes_key).decrypt(blob[body : body + IV_BYTES], blob[body + IV_BYTES :], None)
    except Exception as exc:  # a wrong key (any error type of the unwrap) or a bad tag
        raise HttpError(ErrorKind.SERVER_ERROR, "hybrid RSA payload does not decrypt") from exc


def session_batch_to_json(batch: SessionBatch) -> dict[str, Any]:
    """``getEntries`` with ``sessionKeyWrap: true``: ``{wrappedSessionKey, entries}``."""
    return {
        "wrappedSessionKey": b64(batch.wrapped_session_key),
        "entries": [
            {
                **metadata_to_json(item.metadata),
                "iv": b64(item.iv),
                "sessionEncryptedPayload": b64(item.payload),
            }
            for item in batch.entries
        ],
    }


def session_batch_from_json(body: Any, max_payload: int = DEFAULT_BODY_LIMIT) -> SessionBatch:
    obj = _obj(body, "getEntries answer")
    if "wrappedSessionKey" not in obj:
        raise HttpError(ErrorKind.SERVER_ERROR, "no session-key-wrapped getEntries answer")
    wrapped = unb64(obj["wrappedSessionKey"], "wrappedSessionKey", 4096)
    raw = obj.get("entries")
    if not isinstance(raw, list):
        raise invalid("entries must be an array")
    items = []
    for item in raw:
        meta = _meta(item)
        iv = unb64(item.get("iv"), "iv", 64)
        payload = unb64(item.get("sessionEncryptedPayload"), "sessionEncryptedPayload", max_payload)
        items.append(SessionEntry(meta, iv, payload))
    return SessionBatch(wrapped, tuple(items))


def legacy_entries_to_json(
    entries: Sequence[StoreEntry], reader: RSAPublicKey | str
) -> dict[str, Any]:
    """``getEntries`` without ``sessionKeyWrap``: each payload hybrid-RSA-encrypted."""
    key_obj = load_rsa_public(reader) if isinstance(reader, str) else reader
    return {
        "entries": [
            {
                **metadata_to_json(e.metadata),
                "rsaEncryptedPayload": b64(hybrid_encrypt(e.encrypted_data, key_obj)),
            }
            for e in entries
        ]
    }


def legacy_entries_from_json(
    body: Any, unwrap: Unwrap, max_payload: int = DEFAULT_BODY_LIMIT
) -> list[StoreEntry]:
    obj = _obj(body, "getEntries answer")
    raw = obj.get("entries")
    if not isinstance(raw, list):
        raise invalid("entries must be an array")
    out = []
    for item in raw:
        meta = _meta(item)
        blob = unb64(item.get("rsaEncryptedPayload"), "rsaEncryptedPayload", max_payload + 1024)
        out.append(StoreEntry(meta, hybrid_decrypt(blob, unwrap)))
    return out


# -- binary framing v2 (reference-formats §2.6) ------------------------------------------------
@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A framed body: a header object, then ``(metadata object, payload)`` frames."""

    header: Mapping[str, Any]
    frames: tuple[tuple[Mapping[str, Any], bytes], ...]


def encode_binary(
    header: Mapping[str, Any], frames: Sequence[tuple[Mapping[str, Any], bytes]]
) -> bytes:
    """``u32BE(len) || header JSON`` then per frame ``u32BE(len) || meta || u32BE(len) || data``."""
    parts = [_json_bytes(header)]
    out = [_U32.pack(len(parts[0])), parts[0]]
    for meta, payload in frames:
        meta_bytes = _json_bytes(meta)
        out += [_U32.pack(len(meta_bytes)), meta_bytes, _U32.pack(len(payload)), bytes(payload)]
    return b"".join(out)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_binary(
    data: bytes, *, max_frames: int = MAX_PUT_ENTRIES, max_meta_bytes: int = 256 * 1024
) -> BinaryMessage:
    """Parse a framed body, checking every length prefix against what is left (§2.6)."""
    view = memoryview(data)
    offset = 0

    def chunk(what: str, limit: int) -> bytes:
        nonlocal offset
        if offset + 4 > len(view):
            raise invalid(f"Truncated binary entry message while reading {what} length")
        (length,) = _U32.unpack_from(view, offset)
        offset += 4
        if length > limit or offset + length > len(view):
            raise invalid(f"Truncated or oversized binary entry message reading {what}")
        piece = bytes(view[offset : offset + length])
        offset += length
        return piece

    def parse(raw: bytes, what: str) -> Mapping[str, Any]:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise invalid(f"binary entry message: {what} is not JSON") from exc
        return _obj(obj, f"binary {what}")

    header = parse(chunk("header", max_meta_bytes), "header")
    frames: list[tuple[Mapping[str, Any], bytes]] = []
    while offset < len(view):
        if len(frames) >= max_frames:
            raise invalid(f"entries must contain at most {max_frames} elements")
        meta = parse(chunk("entry metadata", max_meta_bytes), "entry metadata")
        frames.append((meta, chunk("entry payload", len(view))))
    return BinaryMessage(header, tuple(frames))


def encode_get_entries_binary(batch: SessionBatch) -> bytes:
    """A ``getEntriesBinary`` answer: ``mdb-entries-v2`` with the wrapped key in the header."""
    header = {"format": GET_ENTRIES_FORMAT, "wrappedSessionKey": b64(batch.wrapped_session_key)}
    frames = [
        ({**metadata_to_json(item.metadata), "iv": b64(item.iv)}, item.payload)
        for item in batch.entries
    ]
    return encode_binary(header, frames)


def decode_get_entries_binary(data: bytes) -> SessionBatch:
    message = decode_binary(data, max_frames=MAX_ENTRY_IDS)
    fmt = str(message.header.get("format"))[:64]
    if fmt != GET_ENTRIES_FORMAT:
        raise HttpError(ErrorKind.SERVER_ERROR, f"unsupported binary entry format: {fmt}")
    if "wrappedSessionKey" not in message.header:
        raise HttpError(ErrorKind.SERVER_ERROR, "binary getEntries answer lacks the session key")
    wrapped = unb64(message.header["wrappedSessionKey"], "wrappedSessionKey", 4096)
    items = tuple(
        SessionEntry(_meta(meta), unb64(meta.get("iv"), "iv", 64), payload)
        for meta, payload in message.frames
    )
    return SessionBatch(wrapped, items)
