"""The reference's ``/system/*`` admin API, as far as publishing a tenant needs it (§3.1, §3.8).

A system admin (a ``{username, publicsignkey}`` pair the operator configured, as the reference's
config.json ``capabilities`` ``"ALL:/system/*"`` list) logs in by challenge and Ed25519
signature and gets an HS256 token naming both; with it ``POST /system/tenants/<id>`` registers a
tenant: its admin keys and its ``$publicinfos`` key, RSA-wrapped to the server's encryption key
(``encryptedPublicInfosKey``) or plain (``publicInfosKey``). The node then serves that tenant as
a relay. Answers are the reference's: 201 new, 200 the same key posted again, 409 another key.

An optional IP allowlist (addresses or networks) keeps ``/system/*`` from everyone else. Sans
I/O: the node supplies the registrar and the unwrapping of the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.http.auth import (
    CHALLENGE_SECONDS,
    MAX_CHALLENGES,
    TOKEN_SECONDS,
    normalize_key,
    uuid7,
    verify_ed25519,
)
from protocol.http.checks import (
    MAX_PEM_LENGTH,
    MAX_USERNAME_LENGTH,
    ErrorKind,
    HttpError,
    _obj,
    _opt_str,
    _str,
    check_tenant_id,
    invalid,
)
from protocol.http.wire import AuthenticateRequest

#: The largest ``$publicinfos`` key accepted (the reference's are 32 bytes).
MAX_PUBLIC_INFOS_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class SystemAdmin:
    """One principal allowed on ``/system/*``."""

    username: str
    publicsignkey: str


@dataclass(frozen=True, slots=True)
class RegisterTenantRequest:
    """``POST /system/tenants/<id>`` (reference ``RegisterTenantRequest``; ``users`` ignored:
    every user is known through the directory the admin pushes)."""

    tenant_id: str
    admin_username: str | None
    admin_signing_public_key: str
    admin_encryption_public_key: str
    encrypted_public_infos_key: str | None
    public_infos_key: str | None

    @classmethod
    def from_json(cls, tenant_id: str, body: Any) -> RegisterTenantRequest:
        obj = _obj(body)
        if not obj.get("adminSigningPublicKey"):
            raise invalid("adminSigningPublicKey is required")
        if not obj.get("adminEncryptionPublicKey"):
            raise invalid("adminEncryptionPublicKey is required")
        if not obj.get("encryptedPublicInfosKey") and not obj.get("publicInfosKey"):
            raise invalid("encryptedPublicInfosKey or publicInfosKey is required")
        return cls(
            tenant_id,
            _opt_str(obj.get("adminUsername"), "adminUsername", MAX_USERNAME_LENGTH),
            _str(obj["adminSigningPublicKey"], "adminSigningPublicKey", MAX_PEM_LENGTH),
            _str(obj["adminEncryptionPublicKey"], "adminEncryptionPublicKey", MAX_PEM_LENGTH),
            _opt_str(obj.get("encryptedPublicInfosKey") or None, "encryptedPublicInfosKey", 8192),
            _opt_str(obj.get("publicInfosKey") or None, "publicInfosKey", MAX_PEM_LENGTH),
        )


class RegistrationConflict(Exception):
    """The tenant exists here with another ``$publicinfos`` key (409)."""


class TenantRegistrar(Protocol):
    """What the node does with a registration (implemented by the daemon)."""

    async def register(self, request: RegisterTenantRequest, public_infos_key: bytes) -> bool:
        """Serve the tenant as a relay holding ``public_infos_key``; True if new, False if it
        is here with that key already; ``RegistrationConflict`` if with another key."""
        ...

    def registered_tenants(self) -> list[str]: ...

    def admin_username(self, tenant_id: str) -> str | None:
        """The admin username a registration named (it may log in before any grant)."""
        ...

    async def remove(self, tenant_id: str) -> bool:
        """Stop serving a registered tenant and delete it; False if there is none."""
        ...


@dataclass(slots=True)
class _Challenge:
    admin: SystemAdmin
    expires_at: float
    used: bool = False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class SystemAuth:
    """Challenges and tokens of the system admins (tokens name ``sub`` and ``publicsignkey``,
    live 1 hour and die with the process, as the reference's)."""

    def __init__(
        self,
        admins: Sequence[SystemAdmin],
        *,
        clock: Callable[[], float] = time.time,
        secret: bytes | None = None,
    ) -> None:
        self.admins = tuple(admins)
        self._clock = clock
        self._secret = secret if secret is not None else os.urandom(32)
        self._challenges: OrderedDict[str, _Challenge] = OrderedDict()

    def _find(self, username: str, publicsignkey: str) -> SystemAdmin | None:
        wanted = (username.lower(), normalize_key(publicsignkey))
        for admin in self.admins:
            if (admin.username.lower(), normalize_key(admin.publicsignkey)) == wanted:
                return admin
        return None

    def challenge(self, username: str, publicsignkey: str) -> str:
        admin = self._find(username, publicsignkey)
        if admin is None:
            raise HttpError(ErrorKind.NOT_FOUND, "System admin principal not found")
        now = self._clock()
        while self._challenges:
            if next(iter(self._challenges.values())).expires_at >= now:
                break
            self._challenges.popitem(last=False)
        challenge = uuid7(now)
        self._challenges[challenge] = _Challenge(admin, now + CHALLENGE_SECONDS)
        while len(self._challenges) > MAX_CHALLENGES:
            self._challenges.popitem(last=False)
        return challenge

    def authenticate(self, challenge: str, signature: bytes) -> str:
        """A token, or ``HttpError`` whose message the reference's ``{success:false}`` carries."""
        record = self._challenges.get(challenge)
        if record is None or self._clock() > record.expires_at or record.used:
            raise HttpError(ErrorKind.CHALLENGE_EXPIRED, "Challenge not found or expired")
        record.used = True
        if not verify_ed25519(record.admin.publicsignkey, signature, challenge.encode("utf-8")):
            raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid signature")
        iat = int(self._clock())
        claims = {
            "sub": record.admin.username,
            "publicsignkey": record.admin.publicsignkey,
            "iat": iat,
            "exp": iat + TOKEN_SECONDS,
        }
        head = _b64url(_compact({"alg": "HS256", "typ": "JWT"}))
        body = _b64url(_compact(claims))
        mac = hmac.new(self._secret, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(mac)}"

    def validate(self, headers: Mapping[str, str]) -> SystemAdmin:
        """The admin of a valid bearer token who is still configured; 401 / 403 otherwise."""
        value = headers.get("authorization", "")
        if not value.startswith("Bearer "):
            raise HttpError(ErrorKind.INVALID_TOKEN, "Missing or invalid Authorization header")
        parts = value[7:].split(".")
        claims: Any = None
        if len(parts) == 3 and len(value) < 16 * 1024:
            try:
                header = json.loads(_unb64url(parts[0]))
                expected = hmac.new(
                    self._secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256
                ).digest()
                if (
                    isinstance(header, dict)
                    and header.get("alg") == "HS256"
                    and hmac.compare_digest(expected, _unb64url(parts[2]))
                ):
                    claims = json.loads(_unb64url(parts[1]))
            except (ValueError, binascii.Error, UnicodeEncodeError):
                claims = None
        if (
            not isinstance(claims, dict)
            or not isinstance(claims.get("exp"), int)
            or claims["exp"] < int(self._clock())
            or not isinstance(claims.get("sub"), str)
            or not isinstance(claims.get("publicsignkey"), str)
        ):
            raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid or expired token")
        admin = self._find(claims["sub"], claims["publicsignkey"])
        if admin is None:  # removed from the configuration since
            raise HttpError(ErrorKind.ACCESS_DENIED, "Forbidden: insufficient capabilities")
        return admin


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowlist(entries: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.0/8``); ``ValueError`` names a bad one."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


@dataclass(frozen=True, slots=True)
class SystemAnswer:
    status: int
    body: Any


class SystemApi:
    """``/system/auth/*`` and ``/system/tenants[/<id>]``."""

    def __init__(
        self,
        auth: SystemAuth,
        registrar: TenantRegistrar,
        unwrap_key: Callable[[bytes], bytes],
        *,
        allowed_ips: Sequence[Network] = (),
    ) -> None:
        self.auth = auth
        self._registrar = registrar
        self._unwrap = unwrap_key
        self._allowed = tuple(allowed_ips)

    def _allowed_ip(self, remote: str) -> bool:
        if not self._allowed:
            return True
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self._allowed)

    async def handle(
        self, method: str, parts: Sequence[str], body: Any, headers: Mapping[str, str], remote: str
    ) -> SystemAnswer:
        """``parts``: the path after ``/system``; ``body``: the parsed JSON (or {})."""
        if not self._allowed_ip(remote):
            raise HttpError(ErrorKind.ACCESS_DENIED, "Forbidden")
        if method == "POST" and list(parts) == ["auth", "challenge"]:
            obj = _obj(body)
            username = _str(obj.get("username"), "username", MAX_USERNAME_LENGTH)
            key = _str(obj.get("publicsignkey"), "publicsignkey", MAX_PEM_LENGTH)
            return SystemAnswer(200, {"challenge": self.auth.challenge(username, key)})
        if method == "POST" and list(parts) == ["auth", "authenticate"]:
            request = AuthenticateRequest.from_json(body)  # the same body as the tenant login
            try:
                token = self.auth.authenticate(request.challenge, request.signature)
            except HttpError as exc:
                return SystemAnswer(401, {"success": False, "error": exc.message})
            return SystemAnswer(200, {"success": True, "token": token})
        if parts[:1] != ["tenants"] or len(parts) > 2:
            raise HttpError(ErrorKind.NOT_FOUND, "Not found")
        self.auth.validate(headers)
        if len(parts) == 1:
            if method != "GET":
                raise HttpError(ErrorKind.NOT_FOUND, "Not found")
            return SystemAnswer(200, {"tenants": self._registrar.registered_tenants()})
        tenant_id = check_tenant_id(parts[1])
        if method == "POST":
            return await self._register(RegisterTenantRequest.from_json(tenant_id, body))
        if method == "DELETE":
            if not await self._registrar.remove(tenant_id):
                raise HttpError(ErrorKind.NOT_FOUND, "Tenant not found")
            return SystemAnswer(200, {"success": True, "message": f"Tenant {tenant_id} removed"})
        raise HttpError(ErrorKind.NOT_FOUND, "Not found")

    async def _register(self, request: RegisterTenantRequest) -> SystemAnswer:
        limit = MAX_PUBLIC_INFOS_KEY_BYTES
        if request.encrypted_public_infos_key is not None:
            try:
                blob = base64.b64decode(request.encrypted_public_infos_key, validate=True)
                key = self._unwrap(blob)
            except (binascii.Error, ValueError) as exc:
                raise invalid(f"encryptedPublicInfosKey cannot be decrypted: {exc}") from None
        else:
            assert request.public_infos_key is not None
            try:
                key = base64.b64decode(request.public_infos_key, validate=True)
            except (binascii.Error, ValueError):
                raise invalid("publicInfosKey is not valid base64") from None
        if not key or len(key) > limit:
            raise invalid(f"the $publicinfos key must be 1 to {limit} bytes")
        tenant_id = request.tenant_id
        try:
            created = await self._registrar.register(request, key)
        except RegistrationConflict as exc:
            raise HttpError(ErrorKind.CONFLICT, str(exc)) from None
        message = (
            f"Tenant {tenant_id} registered successfully"
            if created
            else f"Tenant {tenant_id} already exists with matching $publicinfos key"
        )
        return SystemAnswer(
            201 if created else 200,
            {"success": True, "tenantId": tenant_id, "created": created, "message": message},
        )


__all__ = [
    "RegisterTenantRequest",
    "RegistrationConflict",
    "SystemAdmin",
    "SystemAnswer",
    "SystemApi",
    "SystemAuth",
    "TenantRegistrar",
    "parse_allowlist",
]
