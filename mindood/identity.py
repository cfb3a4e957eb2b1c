"""User identities: an Ed25519 signing pair and an RSA-3072 encryption pair per user (device).

* :class:`PrivateUserId` is what a device stores: both public PEMs and both private keys sealed
  under the user's password (salt strings ``"signing"`` / ``"encryption"``, reference-formats §1.3).
  It is safe at rest but useless without the password.
* :class:`PublicUserId` is what others learn (join requests, directory grants): username + PEMs.
* :class:`UnlockedUserId` holds the decrypted key objects in memory after :func:`unlock`, which
  checks that each private key really belongs to the public PEM it is stored with (§1.8): a
  swapped PEM in a tampered file must not let us sign under someone else's name.
* Newer identities also carry ``userKeyPair``, the person-bound RSA "User-Key" (salt
  ``"userkey"``) that key distributions wrap ``default`` to. As in the reference it is made on
  demand (:func:`ensure_user_key_pair`, called before a join request or a new tenant), not by
  :func:`create_user_id`, and an unopenable User-Key never blocks unlocking the other two keys.

JSON field names follow the TypeScript reference (``userSigningKeyPair``,
``userSigningPublicKey``, ...), so identities can move between the two implementations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from mindood.crypto import rsa
from mindood.crypto._codec import dumps_json, loads_json
from mindood.crypto.pem import load_ed25519_public_pem, load_rsa_public_pem, normalize_pem
from mindood.crypto.private_keys import (
    EncryptedPrivateKey,
    decrypt_private_key,
    encrypt_private_key,
)
from mindood.crypto.signing import generate_signing_keypair, sign, signing_public_pem
from mindood.errors import (
    CryptoError,
    KeyFormatError,
    KeyMismatchError,
    SigningOnlyIdentityError,
)

SIGNING_SALT = "signing"
ENCRYPTION_SALT = "encryption"
#: Salt string of the User-Key's private half (``USERKEY_PRIVATE_SALT``).
USER_KEY_SALT = "userkey"
MAX_USERNAME_LENGTH = 4_096
#: Largest serialized identity accepted by ``from_bytes``.
MAX_IDENTITY_BYTES = 1 << 20

_log = logging.getLogger(__name__)


def _username(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise KeyFormatError("identity 'username' must be a non-empty string")
    if len(value) > MAX_USERNAME_LENGTH:
        raise KeyFormatError("identity 'username' is too long")
    return value


def _object(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise KeyFormatError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _signing_pem(value: object) -> str:
    if not isinstance(value, str):
        raise KeyFormatError("signing public key must be a PEM string")
    load_ed25519_public_pem(value)
    return value


def _encryption_pem(value: object) -> str:
    if not isinstance(value, str):
        raise KeyFormatError("encryption public key must be a PEM string")
    load_rsa_public_pem(value)
    return value


def _from_bytes(data: bytes, what: str) -> object:
    if len(data) > MAX_IDENTITY_BYTES:
        raise KeyFormatError(f"{what} is larger than {MAX_IDENTITY_BYTES} bytes")
    return loads_json(bytes(data), what)


@dataclass(frozen=True, slots=True)
class PublicUserId:
    """A user's public identity: username and the two public keys as reference PEM text."""

    username: str
    signing_public_key: str
    encryption_public_key: str

    def to_json(self) -> dict[str, Any]:
        """The reference's ``PublicUserId`` JSON object."""
        return {
            "username": self.username,
            "userSigningPublicKey": self.signing_public_key,
            "userEncryptionPublicKey": self.encryption_public_key,
        }

    @classmethod
    def from_json(cls, data: object) -> PublicUserId:
        """Validate a JSON object: non-empty username, Ed25519 and RSA PEMs of the right type."""
        obj = _object(data, "public identity")
        return cls(
            username=_username(obj.get("username")),
            signing_public_key=_signing_pem(obj.get("userSigningPublicKey")),
            encryption_public_key=_encryption_pem(obj.get("userEncryptionPublicKey")),
        )

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON."""
        return dumps_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicUserId:
        """Parse :meth:`to_bytes` output (or the reference's JSON), strictly."""
        return cls.from_json(_from_bytes(data, "public identity"))


@dataclass(frozen=True, slots=True)
class PrivateUserId:
    """A user's identity as stored on their device: public PEMs + password-sealed private keys."""

    username: str
    signing_public_key: str
    signing_private_key: EncryptedPrivateKey
    encryption_public_key: str
    encryption_private_key: EncryptedPrivateKey
    #: The optional person-bound RSA "User-Key" pair (salt "userkey"): both halves or neither.
    user_key_public_key: str | None = None
    user_key_private_key: EncryptedPrivateKey | None = None

    def __post_init__(self) -> None:
        if (self.user_key_public_key is None) != (self.user_key_private_key is None):
            raise KeyFormatError("a User-Key pair needs both its public and its private half")

    @property
    def has_user_key(self) -> bool:
        """True when this identity carries a User-Key pair."""
        return self.user_key_public_key is not None

    @property
    def public(self) -> PublicUserId:
        """The shareable half of this identity."""
        return to_public_user_id(self)

    def to_json(self) -> dict[str, Any]:
        """The reference's ``PrivateUserId`` JSON object."""
        out: dict[str, Any] = {
            "username": self.username,
            "userSigningKeyPair": {
                "publicKey": self.signing_public_key,
                "privateKey": self.signing_private_key.to_json(),
            },
            "userEncryptionKeyPair": {
                "publicKey": self.encryption_public_key,
                "privateKey": self.encryption_private_key.to_json(),
            },
        }
        if self.user_key_private_key is not None:
            out["userKeyPair"] = {
                "publicKey": self.user_key_public_key,
                "privateKey": self.user_key_private_key.to_json(),
            }
        return out

    @classmethod
    def from_json(cls, data: object) -> PrivateUserId:
        """Validate a JSON object; any defect raises :class:`KeyFormatError`."""
        obj = _object(data, "private identity")
        signing = _object(obj.get("userSigningKeyPair"), "'userSigningKeyPair'")
        encryption = _object(obj.get("userEncryptionKeyPair"), "'userEncryptionKeyPair'")
        user_key_public: str | None = None
        user_key_private: EncryptedPrivateKey | None = None
        if obj.get("userKeyPair") is not None:
            user_key = _object(obj.get("userKeyPair"), "'userKeyPair'")
            user_key_public = _encryption_pem(user_key.get("publicKey"))
            user_key_private = EncryptedPrivateKey.from_json(user_key.get("privateKey"))
        return cls(
            username=_username(obj.get("username")),
            signing_public_key=_signing_pem(signing.get("publicKey")),
            signing_private_key=EncryptedPrivateKey.from_json(signing.get("privateKey")),
            encryption_public_key=_encryption_pem(encryption.get("publicKey")),
            encryption_private_key=EncryptedPrivateKey.from_json(encryption.get("privateKey")),
            user_key_public_key=user_key_public,
            user_key_private_key=user_key_private,
        )

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON (contains only sealed private keys)."""
        return dumps_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateUserId:
        """Parse :meth:`to_bytes` output (or the reference's JSON), strictly."""
        return cls.from_json(_from_bytes(data, "private identity"))


@dataclass(frozen=True, slots=True, eq=False)
class UnlockedUserId:
    """An identity with its private keys decrypted; keep it in memory only.

    An admin identity opened with :func:`unlock_async` ``signing_only=True`` holds no
    encryption key (admin writes only sign): asking for it raises
    :class:`SigningOnlyIdentityError` rather than paying a PBKDF2 and an RSA load for nothing.
    """

    private: PrivateUserId
    signing_key: Ed25519PrivateKey = field(repr=False)
    #: The device encryption key; None for an identity unlocked for signing only.
    opened_encryption_key: RSAPrivateKey | None = field(repr=False)
    #: The User-Key's private half, when the identity has one and it opened and matched.
    user_key: RSAPrivateKey | None = field(default=None, repr=False)
    #: Why an identity's User-Key is not available (None when it is, or when there is none).
    user_key_error: str | None = None

    @property
    def encryption_key(self) -> RSAPrivateKey:
        """The device's RSA encryption key (:class:`SigningOnlyIdentityError` if not opened)."""
        if self.opened_encryption_key is None:
            raise SigningOnlyIdentityError(
                f"the identity of {self.username!r} was unlocked for signing only"
            )
        return self.opened_encryption_key

    @property
    def signing_only(self) -> bool:
        """True when only the signing key was unlocked."""
        return self.opened_encryption_key is None

    @property
    def username(self) -> str:
        """The user's name."""
        return self.private.username

    @property
    def public(self) -> PublicUserId:
        """The shareable half of this identity."""
        return to_public_user_id(self.private)

    def sign(self, data: bytes) -> bytes:
        """Ed25519-sign ``data`` with this user's signing key."""
        return sign(self.signing_key, data)

    def decrypt(self, blob: bytes) -> bytes:
        """Open a hybrid RSA blob addressed to this user (:func:`mindood.crypto.rsa.encrypt`)."""
        return rsa.decrypt(blob, self.encryption_key)

    def unwrap_key(self, wrapped: bytes) -> bytes:
        """Open a raw RSA-OAEP key wrap addressed to this user."""
        return rsa.unwrap_key(wrapped, self.encryption_key)

    def user_key_pkcs8(self) -> bytes | None:
        """The User-Key private half as PKCS#8 DER (what a device wrap carries), or None."""
        return None if self.user_key is None else _pkcs8(self.user_key)


def _pkcs8(key: Ed25519PrivateKey | RSAPrivateKey) -> bytes:
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


def create_user_id(username: str, password: str, *, with_user_key: bool = False) -> PrivateUserId:
    """Generate a new identity and seal its private keys under ``password`` (~0.5 s, RSA keygen).

    Like the reference's ``createUserId`` it makes no User-Key unless ``with_user_key`` is set
    (that is :func:`ensure_user_key_pair` in one step, another ~0.4 s).
    """
    _username(username)
    created_at = int(time.time() * 1000)
    signing_key = generate_signing_keypair()
    encryption_key = rsa.generate_rsa_keypair()
    identity = PrivateUserId(
        username=username,
        signing_public_key=signing_public_pem(signing_key),
        signing_private_key=encrypt_private_key(
            _pkcs8(signing_key), password, SIGNING_SALT, created_at=created_at
        ),
        encryption_public_key=rsa.rsa_public_pem(encryption_key),
        encryption_private_key=encrypt_private_key(
            _pkcs8(encryption_key), password, ENCRYPTION_SALT, created_at=created_at
        ),
    )
    return ensure_user_key_pair(identity, password) if with_user_key else identity


def ensure_user_key_pair(private: PrivateUserId, password: str) -> PrivateUserId:
    """``private`` with a User-Key pair: unchanged if it has one, else with a new RSA-3072 pair.

    The private half is PKCS#8 sealed under ``password`` with salt ``"userkey"``, so a saved
    identity (a paper backup included) restores it. The caller saves the returned identity.
    """
    return ensure_user_key_pair_with_key(private, password)[0]


def ensure_user_key_pair_with_key(
    private: PrivateUserId, password: str
) -> tuple[PrivateUserId, RSAPrivateKey | None]:
    """:func:`ensure_user_key_pair`, also returning the new private half (None if not new).

    A caller that unlocks the identity next passes the key on (``unlock_async(...,
    user_key=...)``) instead of decrypting and loading what it has just made.
    """
    if private.has_user_key:
        return private, None
    user_key = rsa.generate_rsa_keypair()
    made = dataclasses.replace(
        private,
        user_key_public_key=rsa.rsa_public_pem(user_key),
        user_key_private_key=encrypt_private_key(
            _pkcs8(user_key), password, USER_KEY_SALT, created_at=int(time.time() * 1000)
        ),
    )
    return made, user_key


def to_public_user_id(private: PrivateUserId) -> PublicUserId:
    """The public identity of ``private`` (no secrets)."""
    return PublicUserId(
        username=private.username,
        signing_public_key=private.signing_public_key,
        encryption_public_key=private.encryption_public_key,
    )


def _load_private(
    pkcs8: bytes, what: str, *, sealed: bool = False
) -> Ed25519PrivateKey | RSAPrivateKey:
    """Load a PKCS#8 private key; ``sealed`` when it came out of a password-sealed blob.

    OpenSSL's full RSA validation (primality tests of p and q) costs 0.2-0.3 s per RSA-3072
    key here, 1.5-2 PBKDF2 runs' worth, and an unlock pays it twice. A sealed key's bytes were
    authenticated by AES-GCM under the owner's password-derived key, so only the owner could
    have made them: for those the primality tests are skipped and the cheap arithmetic checks
    of :func:`_check_rsa_arithmetic` run instead (the caller then checks the public half
    against the stored PEM). The key is only ever used to decrypt and unwrap (OAEP), never to
    sign. Keys from anywhere else get OpenSSL's full validation.
    """
    try:
        key = load_der_private_key(pkcs8, password=None, unsafe_skip_rsa_key_validation=sealed)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"decrypted {what} key is not a valid PKCS#8 key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey | RSAPrivateKey):
        raise KeyFormatError(f"decrypted {what} key has unsupported type {type(key).__name__}")
    if sealed and isinstance(key, RSAPrivateKey):
        _check_rsa_arithmetic(key, what)
    return key


def _check_rsa_arithmetic(key: RSAPrivateKey, what: str) -> None:
    """Raise :class:`KeyFormatError` unless ``n = pq`` and ``d`` and the CRT values fit.

    Everything OpenSSL's key check verifies except that p and q are prime (microseconds, not
    tenths of a second): with these, decryption through the CRT values agrees with ``d``.
    """
    numbers = key.private_numbers()
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    p, q, d = numbers.p, numbers.q, numbers.d
    if not (1 < p < n and 1 < q < n and 1 < d < n and p * q == n):
        raise KeyFormatError(f"decrypted {what} key is not a consistent RSA key (n != p*q)")
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    if (
        (d * e) % lam != 1
        or numbers.dmp1 != d % (p - 1)
        or numbers.dmq1 != d % (q - 1)
        or (numbers.iqmp * q) % p != 1
    ):
        raise KeyFormatError(f"decrypted {what} key is not a consistent RSA key (bad exponents)")


def unlock(private: PrivateUserId, password: str) -> UnlockedUserId:
    """Decrypt both private keys and check them against the stored public PEMs.

    Raises :class:`WrongPasswordError` for a wrong password, :class:`KeyFormatError` when a
    decrypted key is not the expected type, :class:`KeyMismatchError` when it does not match.
    One PBKDF2 per sealed key (each has its own salt); :func:`unlock_async` runs them at once.
    """
    signing = _open_signing_key(private, password)
    encryption = _open_encryption_key(private, password)
    user_key, user_key_error = _unlock_user_key(private, password)
    return UnlockedUserId(private, signing, encryption, user_key, user_key_error)


async def unlock_async(
    private: PrivateUserId,
    password: str,
    *,
    signing_only: bool = False,
    user_key: RSAPrivateKey | None = None,
) -> UnlockedUserId:
    """:func:`unlock` with each sealed key opened in its own worker thread, concurrently.

    Every sealed key has its own salt, so the format forces one PBKDF2 per key; those release
    the GIL and overlap on several cores, and each RSA load follows its own derivation.
    ``signing_only`` opens the signing key alone (an admin's writes only sign). A ``user_key``
    the caller already holds (just made by :func:`ensure_user_key_pair_with_key`) is checked
    against the stored public half instead of being decrypted again. Errors are those of
    :func:`unlock`, raised in the same order (signing key first) whichever thread ends first.
    """
    jobs: list[Awaitable[object]] = [asyncio.to_thread(_open_signing_key, private, password)]
    if not signing_only:
        jobs.append(asyncio.to_thread(_open_encryption_key, private, password))
        if user_key is None:
            jobs.append(asyncio.to_thread(_unlock_user_key, private, password))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    signing = results[0]
    assert isinstance(signing, Ed25519PrivateKey)
    if signing_only:
        return UnlockedUserId(private, signing, None)
    encryption = results[1]
    assert isinstance(encryption, RSAPrivateKey)
    if user_key is not None:
        if private.user_key_public_key is None or normalize_pem(
            rsa.rsa_public_pem(user_key)
        ) != normalize_pem(private.user_key_public_key):
            raise KeyMismatchError("the given User-Key does not match the identity's")
        return UnlockedUserId(private, signing, encryption, user_key)
    opened = results[2]
    assert isinstance(opened, tuple)
    return UnlockedUserId(private, signing, encryption, opened[0], opened[1])


def _open_signing_key(private: PrivateUserId, password: str) -> Ed25519PrivateKey:
    signing = _load_private(
        decrypt_private_key(private.signing_private_key, password, SIGNING_SALT), "signing"
    )
    if not isinstance(signing, Ed25519PrivateKey):
        raise KeyFormatError("decrypted signing key is not an Ed25519 key")
    if normalize_pem(signing_public_pem(signing)) != normalize_pem(private.signing_public_key):
        raise KeyMismatchError("signing private key does not match the stored public key")
    return signing


def _open_encryption_key(private: PrivateUserId, password: str) -> RSAPrivateKey:
    encryption = load_sealed_rsa_key(
        decrypt_private_key(private.encryption_private_key, password, ENCRYPTION_SALT),
        "encryption",
    )
    if normalize_pem(rsa.rsa_public_pem(encryption)) != normalize_pem(
        private.encryption_public_key
    ):
        raise KeyMismatchError("encryption private key does not match the stored public key")
    return encryption


def load_sealed_rsa_key(pkcs8: bytes, what: str) -> RSAPrivateKey:
    """The RSA key in PKCS#8 ``pkcs8`` just opened from a password-sealed blob, loaded as
    :func:`unlock` loads it (no primality tests, arithmetic checks instead: ``_load_private``).
    """
    key = _load_private(pkcs8, what, sealed=True)
    if not isinstance(key, RSAPrivateKey):
        raise KeyFormatError(f"decrypted {what} key is not an RSA key")
    return key


def load_user_key(pkcs8: bytes, public_key: str) -> RSAPrivateKey:
    """The RSA private key in ``pkcs8``, checked to be the private half of ``public_key``.

    Raises :class:`KeyFormatError` for bytes that are no RSA PKCS#8 key and
    :class:`KeyMismatchError` when the key belongs to another public key.
    """
    return _load_user_key(pkcs8, public_key, sealed=False)


def _load_user_key(pkcs8: bytes, public_key: str, *, sealed: bool) -> RSAPrivateKey:
    key = _load_private(pkcs8, "User-Key", sealed=sealed)
    if not isinstance(key, RSAPrivateKey):
        raise KeyFormatError("decrypted User-Key is not an RSA key")
    if normalize_pem(rsa.rsa_public_pem(key)) != normalize_pem(public_key):
        raise KeyMismatchError("User-Key private key does not match its public key")
    return key


def _unlock_user_key(
    private: PrivateUserId, password: str
) -> tuple[RSAPrivateKey | None, str | None]:
    """Open the User-Key, or say why not: the reference never lets it block an unlock."""
    if private.user_key_private_key is None or private.user_key_public_key is None:
        return None, None
    try:
        pkcs8 = decrypt_private_key(private.user_key_private_key, password, USER_KEY_SALT)
        return _load_user_key(pkcs8, private.user_key_public_key, sealed=True), None
    except CryptoError as exc:  # wrong password, malformed blob or a foreign key
        reason = f"User-Key of {private.username!r} is not usable: {exc}"
    _log.warning("%s", reason)
    return None, reason
