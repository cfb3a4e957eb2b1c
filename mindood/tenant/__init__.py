"""Tenants: identities, the directory, join requests/responses and sessions (spec §1, §2, §6, §7).

``TenantFactory`` creates and joins tenants; a ``Tenant`` opens databases and runs admin
operations; the ``Directory`` holds grants, groups and settings and feeds ``DirectoryTrust``.
"""

from mindood.tenant.directory import Directory
from mindood.tenant.factory import CreatedTenant, JoinedTenant, TenantFactory
from mindood.tenant.joinrequest import JoinRequest
from mindood.tenant.joinresponse import JoinResponse
from mindood.tenant.tenant import Tenant
from mindood.tenant.trust import DirectoryTrust, Verdict
from mindood.tenant.uri import MindooUri, decode_uri, encode_uri

__all__ = [
    "CreatedTenant",
    "Directory",
    "DirectoryTrust",
    "JoinRequest",
    "JoinResponse",
    "JoinedTenant",
    "MindooUri",
    "Tenant",
    "TenantFactory",
    "Verdict",
    "decode_uri",
    "encode_uri",
]
