"""``/device/challenge`` and ``/device/discover`` (reference ``DeviceDiscoveryService``, §3.1).

A device that knows only its own keys proves its signing key (Ed25519 over a UUIDv7 challenge,
valid 5 minutes, usable once) and learns which served tenants grant it: per tenant the admin
keys, the ``$publicinfos`` key versions wrapped (RSA-OAEP) to the encryption key its grant
lists beside that signing key, the grant's hashes and, when the admin left one there, the join
response sealed to the device. The node finds the grants (``DeviceDirectory``); this module
holds the challenges.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.http.auth import CHALLENGE_SECONDS, MAX_CHALLENGES, uuid7, verify_ed25519
from protocol.http.checks import ErrorKind, HttpError


class DeviceDirectory(Protocol):
    def device_deliveries(self, signing_public_key: str) -> list[dict[str, Any]]:
        """A ``DeviceTenantDelivery`` JSON object per served tenant granting this key."""
        ...


@dataclass(slots=True)
class _Challenge:
    signing_public_key: str
    expires_at: float
    used: bool = False


class DeviceDiscovery:
    """The device challenges of one server (in memory, per process)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._challenges: OrderedDict[str, _Challenge] = OrderedDict()

    def challenge(self, signing_public_key: str) -> str:
        now = self._clock()
        for key in [k for k, c in self._challenges.items() if c.used or c.expires_at <= now]:
            del self._challenges[key]
        challenge = uuid7(now)
        self._challenges[challenge] = _Challenge(
            signing_public_key.strip(), now + CHALLENGE_SECONDS
        )
        while len(self._challenges) > MAX_CHALLENGES:
            self._challenges.popitem(last=False)
        return challenge

    def verify(self, challenge: str, signature: bytes) -> str:
        """The signing key that signed ``challenge``; 401 for anything else."""
        record = self._challenges.get(challenge)
        if record is None or self._clock() > record.expires_at:
            raise HttpError(ErrorKind.INVALID_TOKEN, "Challenge not found or expired")
        if record.used:
            raise HttpError(ErrorKind.INVALID_TOKEN, "Challenge already used")
        record.used = True
        if not verify_ed25519(record.signing_public_key, signature, challenge.encode("utf-8")):
            raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid signature")
        return record.signing_public_key


__all__ = ["DeviceDirectory", "DeviceDiscovery"]
