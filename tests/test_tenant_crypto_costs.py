"""How many PBKDF2 runs and RSA private-key loads each tenant operation costs (issue 17).

Each sealed key has its own salt, so the format asks for one derivation per key opened: an
operation must pay each at most once, and none for keys it does not use. An RSA key from a
sealed blob loads without OpenSSL's primality tests (0.2-0.3 s each), so ``rsa_load`` counts
those and ``rsa_load_full_check`` the expensive kind, which no operation here may pay. The counts
are taken with a counting wrapper around the PBKDF2 that every derivation in mindood runs
(``mindood.crypto.kdf``), a spy on ``hashlib.pbkdf2_hmac`` (the slow one, which must not come
back) and on the identity module's PKCS#8 loader (the one place private keys are loaded); they
do not depend on the iteration count, so the suite's lowered count does not change them.
Timings are ``mindood bench tenant``'s business.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import mindood.identity as identity_module
from mindood.crypto import kdf
from mindood.errors import KeyMismatchError, SigningOnlyIdentityError, WrongPasswordError
from mindood.identity import (
    create_user_id,
    ensure_user_key_pair_with_key,
    unlock,
    unlock_async,
)
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant import CreatedTenant, TenantFactory
from tests import tenant_helpers as th


@pytest.fixture(autouse=True, scope="module")
def _fast_kdf() -> Iterator[None]:
    yield from th.fast_kdf()


class Costs:
    """Counts of PBKDF2 runs and private-key loads by type, since the last :meth:`take`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def take(self) -> dict[str, int]:
        taken = {k: v for k, v in self.counts.items() if v}
        self.counts.clear()
        return taken


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> Costs:
    for name in ("admin", "alice", "bob"):
        th.identity(name)  # made (and cached) before counting
    spy = Costs()
    real_kdf = kdf.PBKDF2HMAC
    real_hashlib_pbkdf2 = hashlib.pbkdf2_hmac
    real_load = identity_module.load_der_private_key

    def pbkdf2(*args: Any, **kwargs: Any) -> Any:
        spy.counts["pbkdf2"] += 1
        return real_kdf(*args, **kwargs)

    def hashlib_pbkdf2(*args: Any, **kwargs: Any) -> bytes:
        spy.counts["hashlib_pbkdf2"] += 1
        return real_hashlib_pbkdf2(*args, **kwargs)

    def load(*args: Any, **kwargs: Any) -> Any:
        key = real_load(*args, **kwargs)
        if "RSA" not in type(key).__name__:
            spy.counts["ed25519_load"] += 1
        elif kwargs.get("unsafe_skip_rsa_key_validation"):
            spy.counts["rsa_load"] += 1
        else:
            spy.counts["rsa_load_full_check"] += 1
        return key

    monkeypatch.setattr(kdf, "PBKDF2HMAC", pbkdf2)
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", hashlib_pbkdf2)
    monkeypatch.setattr(identity_module, "load_der_private_key", load)
    return spy


@pytest.fixture
async def stores() -> AsyncIterator[InMemoryStoreFactory]:
    factory = InMemoryStoreFactory()
    yield factory
    await factory.close()


async def _create(stores: InMemoryStoreFactory, app_user: str = "alice") -> CreatedTenant:
    return await TenantFactory(stores).create_tenant(
        tenant_id=th.TENANT_ID,
        admin_name=th.username("admin"),
        admin_password=th.password("admin"),
        user_name=th.username(app_user),
        user_password=th.password(app_user),
        admin_user=th.identity("admin"),
        app_user=th.identity(app_user),
    )


async def test_create_tenant_opens_each_key_once_and_the_admins_signing_key_only(
    stores: InMemoryStoreFactory, costs: Costs
) -> None:
    created = await _create(stores)
    # admin signing; user signing, encryption, User-Key; the KeyBag's wrapping key.
    assert costs.take() == {"pbkdf2": 5, "ed25519_load": 2, "rsa_load": 2}
    await created.tenant.close()


async def test_create_tenant_uses_the_user_key_it_has_just_made(
    stores: InMemoryStoreFactory, costs: Costs
) -> None:
    user = create_user_id(th.username("carol"), th.password("carol"))  # no User-Key yet
    costs.take()
    created = await TenantFactory(stores).create_tenant(
        tenant_id=th.TENANT_ID,
        admin_name=th.username("admin"),
        admin_password=th.password("admin"),
        user_name=user.username,
        user_password=th.password("carol"),
        admin_user=th.identity("admin"),
        app_user=user,
    )
    # sealing the new User-Key; admin signing; user signing and encryption; KeyBag.
    assert costs.take() == {"pbkdf2": 5, "ed25519_load": 2, "rsa_load": 1}
    assert created.app_user.has_user_key and created.tenant.user.user_key is not None
    await created.tenant.close()


async def test_approve_unlocks_the_admin_signing_key_only_and_join_each_key_once(
    stores: InMemoryStoreFactory, costs: Costs
) -> None:
    created = await _create(stores)
    joiner = TenantFactory(stores)
    request = joiner.create_join_request(th.identity("bob"), format="uri", label="bob's laptop")
    costs.take()
    response = await created.tenant.approve_join_request(
        request, admin_signing_key=th.identity("admin"), admin_password=th.password("admin")
    )
    # The admin's tenant reconciles on the directory change without opening a wrap again.
    assert costs.take() == {"pbkdf2": 1, "ed25519_load": 1}
    joined = await joiner.join_tenant(
        response, user=th.identity("bob"), password=th.password("bob")
    )
    # signing, encryption, User-Key, KeyBag: what the format asks for, once each.
    assert costs.take() == {"pbkdf2": 4, "ed25519_load": 1, "rsa_load": 2}
    assert joined.key_bag.has(th.TENANT_ID, "default")
    for tenant in (created.tenant, joined.tenant):
        await tenant.close()


async def test_export_session_checks_the_password_with_one_derivation(
    stores: InMemoryStoreFactory, costs: Costs
) -> None:
    created = await _create(stores)
    costs.take()
    blob = await created.tenant.export_session(th.password("alice"))
    # one to check the password (the signing key), one to seal the session.
    assert costs.take() == {"pbkdf2": 2, "ed25519_load": 1}
    with pytest.raises(WrongPasswordError):
        await created.tenant.export_session("not the password")
    await created.tenant.close()
    restored = await TenantFactory(stores).restore_session(blob, th.password("alice"))
    assert restored.user.username == th.username("alice")
    await restored.close()


# -- unlock_async ------------------------------------------------------------------------------


async def test_unlock_async_opens_what_unlock_opens() -> None:
    private = th.identity("alice")
    sync = unlock(private, th.password("alice"))
    both = await unlock_async(private, th.password("alice"))
    assert both.private == sync.private and not both.signing_only
    assert both.signing_key.public_key() == sync.signing_key.public_key()
    assert both.encryption_key.public_key() == sync.encryption_key.public_key()
    assert both.user_key is not None and sync.user_key is not None
    assert both.user_key.public_key() == sync.user_key.public_key()
    assert both.user_key_error is None


async def test_unlock_async_refuses_a_wrong_password_like_unlock() -> None:
    with pytest.raises(WrongPasswordError):
        await unlock_async(th.identity("alice"), "wrong")
    with pytest.raises(WrongPasswordError):
        await unlock_async(th.identity("alice"), "wrong", signing_only=True)


async def test_a_signing_only_identity_signs_but_has_no_encryption_key() -> None:
    admin = await unlock_async(th.identity("admin"), th.password("admin"), signing_only=True)
    assert admin.signing_only and admin.user_key is None
    assert len(admin.sign(b"grant")) == 64
    with pytest.raises(SigningOnlyIdentityError):
        admin.unwrap_key(b"\0" * 384)


async def test_a_given_user_key_must_be_the_identitys_own() -> None:
    plain = create_user_id(th.username("dave"), th.password("dave"))
    with_key, made = ensure_user_key_pair_with_key(plain, th.password("dave"))
    assert made is not None and with_key.has_user_key
    assert ensure_user_key_pair_with_key(with_key, th.password("dave")) == (with_key, None)
    unlocked = await unlock_async(with_key, th.password("dave"), user_key=made)
    assert unlocked.user_key is made
    foreign = unlock(th.identity("alice"), th.password("alice")).user_key
    assert foreign is not None
    with pytest.raises(KeyMismatchError):
        await unlock_async(with_key, th.password("dave"), user_key=foreign)
