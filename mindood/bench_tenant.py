"""``mindood bench tenant``: createTenant, approve and join, next to the floor they cannot beat.

What dominates these operations is key derivation and key loading: every sealed private key has
its own salt, so the format asks for one PBKDF2 (at the real iteration count: this bench never
lowers it) per key opened, and each RSA private key needs a load. So the floor measured in the
same run is **one PBKDF2 derivation plus one RSA-3072 private-key load as unlock does it**
(medians of 3), and each operation is reported as a ratio to it, next to the goals of issue 17
(createTenant <= 0.8 s, join <= 0.6 s, on a machine where that floor was 0.3 s: 0.2 s PBKDF2 +
0.1 s RSA load). Unlock loads a sealed RSA key without OpenSSL's primality tests
(``mindood.identity._load_private`` says why); ``rsa_full_check_s`` is what a load with them
costs, for comparison.

Each of ``rounds`` rounds makes a fresh in-memory store factory and fresh identities (before the
clock starts: RSA key generation is random in length and belongs to ``create_user_id``), then
times, as the library API runs them:

- ``create_tenant`` with the admin and user identities given (each with a User-Key, as
  ``TenantFactory.create_user_id`` makes them);
- ``approve_join_request`` (v3, the admin identity given sealed with its password);
- ``join_tenant`` of the approved device (sealed identity and password, new KeyBag).

The format forces more than one of each: every sealed key has its own salt (one PBKDF2 per key
opened) and each RSA key needs its own load. So each operation is also reported against its
*format floor*, its forced count of PBKDF2 runs and RSA loads (``FORCED``, asserted by
tests/test_tenant_crypto_costs.py) times the unit costs of this run, run one after another. On
an idle machine the derivations overlap (they release the GIL; each key opens in its own
thread), so an operation can beat its serial format floor; on a busy one it cannot.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from mindood.bench_progress import Progress, quiet
from mindood.crypto import rsa
from mindood.crypto.kdf import derive_key, pbkdf2_iterations
from mindood.identity import create_user_id, load_sealed_rsa_key
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant.factory import TenantFactory

#: The issue's goals, and the floor on the machine where they were set.
GOAL_CREATE_S = 0.8
GOAL_JOIN_S = 0.6
GOAL_MACHINE_FLOOR_S = 0.3
PASSWORD = "bench-password"
#: (PBKDF2 runs, RSA loads) each operation cannot avoid. createTenant: the admin's signing key,
#: the user's signing, encryption and User-Key, the KeyBag's key; loads of the user's two RSA
#: keys. approve: the admin's signing key. join: the joiner's three keys and KeyBag; loads of
#: the encryption key (opens the response) and the User-Key (wrapped to the new device).
FORCED = {"create_tenant": (5, 2), "approve": (1, 0), "join": (4, 2)}


def _median_s(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def _time_async(op: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await op()
    return time.perf_counter() - start, result


def measure_floor(repeats: int = 3) -> dict[str, float]:
    """Medians of one PBKDF2 (current iteration count) and one RSA-3072 load as unlock loads
    a sealed key; also a load with OpenSSL's full key check, for comparison."""
    salt = os.urandom(16) + b"signing"
    pbkdf2 = [
        _time(lambda: derive_key(PASSWORD, salt, pbkdf2_iterations())) for _ in range(repeats)
    ]
    der = rsa.generate_rsa_keypair().private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
    )
    loads = [_time(lambda: load_sealed_rsa_key(der, "bench")) for _ in range(repeats)]
    full = [_time(lambda: load_der_private_key(der, password=None)) for _ in range(repeats)]
    return {
        "pbkdf2_s": _median_s(pbkdf2),
        "rsa_load_s": _median_s(loads),
        "rsa_full_check_s": _median_s(full),
        "floor_s": round(_median_s(pbkdf2) + _median_s(loads), 4),
    }


async def _round(index: int) -> dict[str, float]:
    names = [f"cn={who}{index}/o=bench" for who in ("admin", "alice", "bob")]
    admin, alice, bob = (create_user_id(n, PASSWORD, with_user_key=True) for n in names)
    stores = InMemoryStoreFactory()
    factory = TenantFactory(stores)
    tenant_id = f"bench-tenant-{index}"
    create_s, created = await _time_async(
        lambda: factory.create_tenant(
            tenant_id=tenant_id,
            admin_name=names[0],
            admin_password=PASSWORD,
            user_name=names[1],
            user_password=PASSWORD,
            admin_user=admin,
            app_user=alice,
        )
    )
    joiner = TenantFactory(stores)
    request = joiner.create_join_request(bob, format="uri", label="bench device")
    approve_s, response = await _time_async(
        lambda: created.tenant.approve_join_request(
            request, admin_signing_key=admin, admin_password=PASSWORD
        )
    )
    join_s, joined = await _time_async(
        lambda: joiner.join_tenant(response, user=bob, password=PASSWORD)
    )
    for tenant in (created.tenant, joined.tenant):
        await tenant.close()
    await stores.close()
    return {"create_tenant_s": create_s, "approve_s": approve_s, "join_s": join_s}


async def run_tenant_bench(rounds: int = 3, progress: Progress = quiet) -> dict[str, Any]:
    """Medians over ``rounds`` rounds of the three operations, and the floor of the same run."""
    progress(f"floor: one PBKDF2 at {pbkdf2_iterations():,} iterations and one RSA-3072 load")
    floor = measure_floor()
    samples: list[dict[str, float]] = []
    for index in range(rounds):
        progress(f"round {index + 1}/{rounds}: createTenant, approve, join")
        samples.append(await _round(index))
    result: dict[str, Any] = {
        "rounds": rounds,
        "pbkdf2_iterations": pbkdf2_iterations(),
        **floor,
    }
    for op, (derivations, loads) in FORCED.items():
        median = _median_s([s[f"{op}_s"] for s in samples])
        format_floor = derivations * floor["pbkdf2_s"] + loads * floor["rsa_load_s"]
        result[f"{op}_s"] = median
        result[f"{op}_rounds_s"] = [round(s[f"{op}_s"], 4) for s in samples]
        result[f"{op}_vs_floor"] = round(median / floor["floor_s"], 2)
        result[f"{op}_forced"] = {"pbkdf2": derivations, "rsa_loads": loads}
        result[f"{op}_format_floor_s"] = round(format_floor, 4)
        result[f"{op}_vs_format_floor"] = round(median / format_floor, 2)
    result["goals"] = {
        "create_tenant_s": GOAL_CREATE_S,
        "join_s": GOAL_JOIN_S,
        "create_tenant_vs_floor": round(GOAL_CREATE_S / GOAL_MACHINE_FLOOR_S, 2),
        "join_vs_floor": round(GOAL_JOIN_S / GOAL_MACHINE_FLOOR_S, 2),
    }
    return result


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    goals = result["goals"]
    floor = (
        f"floor {result['floor_s']}s = PBKDF2 {result['pbkdf2_s']}s "
        f"({result['pbkdf2_iterations']:,} it.) + RSA load {result['rsa_load_s']}s "
        f"(with OpenSSL's full key check: {result['rsa_full_check_s']}s)"
    )
    lines = [floor]
    for op, label in (("create_tenant", "createTenant"), ("approve", "approve"), ("join", "join")):
        forced = result[f"{op}_forced"]
        line = (
            f"{label} {result[f'{op}_s']}s = {result[f'{op}_vs_floor']}x floor; "
            f"{result[f'{op}_vs_format_floor']}x its format floor "
            f"({forced['pbkdf2']} PBKDF2 + {forced['rsa_loads']} RSA loads, "
            f"{result[f'{op}_format_floor_s']}s serial)"
        )
        if f"{op}_s" in goals:
            line += (
                f"; goal {goals[f'{op}_s']}s ({goals[f'{op}_vs_floor']}x the floor of "
                f"{GOAL_MACHINE_FLOOR_S}s where it was set)"
            )
        lines.append(line)
    lines.append(f"medians of {result['rounds']} rounds")
    return lines
