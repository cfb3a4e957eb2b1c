"""Shared identities and tenant builders for the tenant tests.

RSA key generation dominates test time (~0.35 s each), so each identity is generated once per
process and reused. Identities are sealed with a low PBKDF2 count; every module that uses them
must keep the test switch on (``fast_kdf`` fixture) so that unlocking takes the stored count.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypedDict

import pytest

from mindood.crypto import kdf
from mindood.identity import PrivateUserId, create_user_id
from mindood.storefactory import InMemoryStoreFactory, StoreFactory
from mindood.tenant import CreatedTenant, TenantFactory

FAST_ITERATIONS = 1_000
TENANT_ID = "acme"


def fast_kdf() -> Iterator[None]:
    """Body of a module-scoped autouse fixture: cheap PBKDF2 for the whole module."""
    with kdf.lowered_pbkdf2_iterations(FAST_ITERATIONS):
        yield


def username(name: str) -> str:
    return f"cn={name}/o=acme"


def password(name: str) -> str:
    return f"{name}-pw"


@functools.cache
def identity(name: str) -> PrivateUserId:
    """``cn=<name>/o=acme`` with password ``<name>-pw``, generated once per process."""
    with kdf.lowered_pbkdf2_iterations(FAST_ITERATIONS):
        return create_user_id(username(name), password(name), with_user_key=True)


async def new_tenant(store_factory: StoreFactory, tenant_id: str = TENANT_ID) -> CreatedTenant:
    """A tenant with admin ``admin`` and first user ``alice``, on ``store_factory``."""
    return await TenantFactory(store_factory).create_tenant(
        tenant_id=tenant_id,
        admin_name=username("admin"),
        admin_password=password("admin"),
        user_name=username("alice"),
        user_password=password("alice"),
        admin_user=identity("admin"),
        app_user=identity("alice"),
    )


def in_memory_tenant_fixture() -> Callable[[], AsyncIterator[CreatedTenant]]:
    """A ``created`` fixture for a test module (``created = in_memory_tenant_fixture()``): a new
    tenant (:func:`new_tenant`) on in-memory stores, closed after each test."""

    @pytest.fixture
    async def created() -> AsyncIterator[CreatedTenant]:
        result = await new_tenant(InMemoryStoreFactory())
        yield result
        await result.tenant.close()

    return created


class AdminCreds(TypedDict):
    admin_signing_key: PrivateUserId
    admin_password: str


def admin_creds() -> AdminCreds:
    """Keyword arguments for the tenant's admin operations."""
    return {"admin_signing_key": identity("admin"), "admin_password": password("admin")}
