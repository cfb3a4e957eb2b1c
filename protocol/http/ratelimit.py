"""Request budgets per client for the HTTP API, in the reference server's tiers.

A node reachable from the internet must not let one client crowd out the others: a flood of
login challenges would push real users' challenges out of the bounded table (``AuthService``),
and a tight loop of sync calls would take the store's time. As on the reference server each
request spends from fixed-window budgets (defaults per minute, the reference's):

- ``auth`` 120: a login challenge per (tenant, address, user or key), an authenticate per
  (tenant, address): guessing at one account does not lock out others behind the same NAT;
- ``sync`` 3,000 per (tenant, logged-in user, address): a client opening several databases
  cold makes a few hundred batched calls each;
- ``system`` 30 and ``device`` 10 per address, for ``/system/*`` and ``/device/*``;
- ``overall`` per address: by default the auth and sync budgets plus headroom, so it only
  catches traffic no tier claims.

An exhausted budget answers 429 with ``Retry-After`` (seconds to the window's end), which the
reference's clients and ours treat as "later". Budgets live in memory and are bounded in count:
past ``MAX_KEYS`` windows the expired go, then the oldest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Windows kept at most (about 200 bytes each: keys longer than ``_LONG_KEY`` are hashed).
MAX_KEYS = 100_000
_LONG_KEY = 96
#: Requests the default overall budget allows beyond the auth and sync tiers (per window).
HEADROOM = 500


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``max`` requests per ``window_s`` seconds; ``max`` 0 turns the tier off."""

    max: int
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max < 0 or not self.window_s > 0:
            raise ValueError("a budget needs max >= 0 and a window above 0 seconds")

    @property
    def enabled(self) -> bool:
        return self.max > 0


@dataclass(frozen=True, slots=True)
class RateLimits:
    auth: Budget = Budget(120)
    sync: Budget = Budget(3000)
    system: Budget = Budget(30)
    device: Budget = Budget(10)
    #: None: derived from ``auth`` and ``sync`` (see the module docstring).
    overall: Budget | None = None
    #: Proxies whose ``X-Forwarded-For`` names the client (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()

    def overall_budget(self) -> Budget:
        if self.overall is not None:
            return self.overall
        window = 60.0

        def per_window(budget: Budget) -> int:
            return math.ceil(budget.max / budget.window_s * window)

        return Budget(per_window(self.sync) + per_window(self.auth) + HEADROOM, window)


#: No limits at all (tests of other behaviour, a node behind its own limiter).
UNLIMITED = RateLimits(Budget(0), Budget(0), Budget(0), Budget(0), Budget(0))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A spent budget: the tier, and the seconds until it refills."""

    tier: str
    retry_after_s: int


@dataclass(slots=True)
class _Window:
    started: float
    count: int


@dataclass(slots=True)
class FixedWindows:
    """Request counts per key, each in its own fixed window."""

    max_keys: int = MAX_KEYS
    _windows: dict[str, _Window] = field(default_factory=dict)

    def spend(self, key: str, budget: Budget, now: float) -> int | None:
        """Count one request; None if within ``budget``, else the seconds to wait."""
        window = self._windows.get(key)
        if window is None or now - window.started >= budget.window_s:
            if window is None and len(self._windows) >= self.max_keys:
                self._make_room(now, budget.window_s)
            self._windows[key] = window = _Window(now, 0)
        if window.count >= budget.max:
            return max(1, math.ceil(window.started + budget.window_s - now))
        window.count += 1
        return None

    def _make_room(self, now: float, window_s: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.started >= window_s]
        for key in expired:
            del self._windows[key]
        while len(self._windows) >= self.max_keys:  # all live: the oldest go first
            del self._windows[next(iter(self._windows))]

    def __len__(self) -> int:
        return len(self._windows)


class RateLimiter:
    """Spends a request's budgets: ``check_*`` return a ``Refusal`` or None."""

    def __init__(self, limits: RateLimits = RateLimits(), max_keys: int = MAX_KEYS) -> None:
        self.limits = limits
        self._overall = limits.overall_budget()
        self._windows = FixedWindows(max_keys)
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in limits.trusted_proxies]
        #: Requests refused so far, per tier (``mindood status``).
        self.refused: Counter[str] = Counter()

    def client(self, remote: str, headers: Mapping[str, str]) -> str:
        """The client's address: the peer's, or the last one a trusted proxy forwarded for."""
        if not self._proxies or not self._is_proxy(remote):
            return remote
        hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for hop in reversed(hops):  # the rightmost hop no trusted proxy added is the client
            if not self._is_proxy(hop):
                return hop[:64]
        return remote

    def _is_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def _spend(self, tier: str, budget: Budget, key: str, now: float) -> Refusal | None:
        if not budget.enabled:
            return None
        if len(key) > _LONG_KEY:  # a key PEM or a long name: the table stays small
            key = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        wait = self._windows.spend(f"{tier}:{key}", budget, now)
        if wait is None:
            return None
        self.refused[tier] += 1
        return Refusal(tier, wait)

    def check_overall(self, client: str, now: float) -> Refusal | None:
        return self._spend("overall", self._overall, client, now)

    def check_route(self, tier: str, client: str, now: float) -> Refusal | None:
        """``system`` or ``device``: budgets per address."""
        budget = {"system": self.limits.system, "device": self.limits.device}[tier]
        return self._spend(tier, budget, client, now)

    def check_auth(
        self, scope: str, phase: str, client: str, principal: str | None, now: float
    ) -> Refusal | None:
        """A login step: ``principal`` (user name or key) only for a challenge."""
        key = f"{scope}:{phase}:{client}"
        if phase == "challenge":
            key += f":{(principal or '-').strip().lower()}"
        return self._spend("auth", self.limits.auth, key, now)

    def check_sync(self, tenant: str, principal: str, client: str, now: float) -> Refusal | None:
        return self._spend("sync", self.limits.sync, f"{tenant}:{principal}:{client}", now)


def refusal_message(tier: str) -> str:
    if tier == "auth":
        return "Too many authentication attempts, please try again later"
    return "Too many requests, please try again later"
