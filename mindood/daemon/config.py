"""The daemon's configuration: one frozen dataclass tree read from an optional TOML file.

Every key is optional; an empty or missing file is the default configuration. Unknown keys and
wrong types are errors that name the key (``limits.max_connections: expected an integer``), so a
typo never silently becomes a default. Layout::

    [daemon]
    data_dir = "/var/lib/mindood"          # default: $STATE_DIRECTORY or $XDG_DATA_HOME/mindood
    socket = "/run/mindood/mindood.sock"   # default: $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR/...
    log_level = "INFO"                     # DEBUG, INFO, WARNING, ERROR

    [network]                              # used by the sync service
    listen = ["tcp://0.0.0.0:7890"]
    max_pending_handshakes = 16            # unauthenticated connections per listener
    handshake_timeout = 10                 # seconds from accept to authenticated

    [limits]                               # see Limits below
    max_connections = 64

    [tenants.acme]                         # one table per tenant id
    password_file = "/etc/mindood/acme.password"  # unlock at startup from this file
    credential = "acme"                    # or from $CREDENTIALS_DIRECTORY/<credential>
    databases = ["contacts"]               # opened when the tenant is unlocked
    auto_unlock = true

    [[peers]]                              # peers to dial
    address = "tcp://10.0.0.5:7890"
    tenants = ["acme"]

    [[peers]]                              # a MindooDB HTTP sync server: synced both ways,
    address = "https://sync.example.com"   # followed live by its change feed (http:// only
    tenants = ["acme"]                     # to a loopback address)

    [[upstreams]]                          # store-chaining upstream nodes
    address = "tcp://central.example:7890"
    tenant = "acme"
    databases = ["contacts"]

    [[upstreams]]                          # or an HTTP sync server: an edge cache in front
    address = "https://sync.example.com"   # of it (http:// only to a loopback address)
    tenant = "beta"

    [discovery]                            # mDNS: only on these interfaces; none named = off
    interfaces = ["eth0"]

    [http]                                 # MindooDB's HTTP sync API; off unless listen is set
    listen = ["127.0.0.1:8443"]
    tls_cert = "/etc/mindood/http.crt"     # both or neither: without them plain HTTP
    tls_key = "/etc/mindood/http.key"
    name = "edge-1"                        # shown in /.well-known/mindoodb-server-info
    max_body_bytes = 5242880               # request bodies above this get 413
    system_allowed_ips = ["127.0.0.1"]     # /system/* only from these (default: anyone)
    cors_origins = ["https://app.example.com"]  # web apps a browser may let call it ("*": any)

    [http.rate_limits]                     # requests per client and window (the reference's)
    auth = { max = 120, window_s = 60 }    # also sync (3000), system (30), device (10),
    overall = { max = 0 }                  #   overall (auth + sync + 500); max = 0: no limit
    trusted_proxies = ["127.0.0.1"]        # their X-Forwarded-For names the client

    [[http.system_admins]]                 # who may register tenants (POST /system/tenants/<id>)
    username = "cn=sysadmin/o=acme"        # as the reference's config.json "ALL:/system/*"
    publicsignkey = '''-----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----'''

``[network] mdns`` is refused with a message pointing to ``[discovery]``: it was read by
nothing, and mDNS must never start without the operator naming the interfaces.

On SIGHUP the file is read again; :func:`restart_required` lists what cannot change live.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mindood.errors import MindoodError
from mindood.storefactory import check_component
from mindood.sync.discovery import DiscoveryConfig
from mindood.sync.network import NetworkConfig as PeerNetworkConfig
from mindood.sync.webrtc_dial import WebRtcConfig
from protocol.http.ratelimit import Budget, RateLimits
from store.limits import ENTRY_ENVELOPE_BYTES, MAX_ENTRY_BYTES
from transports.http_cors import check_origin
from transports.webrtc import IceServer

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Why ``[network] mdns`` is an error rather than a setting.
MDNS_MOVED = (
    "no such setting: mDNS discovery is configured in [discovery] "
    '(interfaces = ["eth0"]) and is off unless interfaces are named there'
)
MAX_CONFIG_BYTES = 1024 * 1024
MAX_ADDRESS_CHARS = 1024

T = TypeVar("T")


class ConfigError(MindoodError):
    """The configuration file is unreadable, not TOML, or has a bad key (named in ``key``)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what clients may make the daemon do. All of them apply live after a reload."""

    #: Largest RPC frame (request) accepted; bigger ones close the connection. The default
    #: carries the largest document change any node may write (``MAX_ENTRY_BYTES``) with room
    #: to spare, so a request just over that limit gets the clear "too large" error.
    max_frame_bytes: int = MAX_ENTRY_BYTES + ENTRY_ENVELOPE_BYTES
    #: Concurrent RPC connections.
    max_connections: int = 64
    #: Requests of one connection handled at once; more wait in the client's socket.
    max_inflight_per_connection: int = 16
    #: Subscriptions one connection may hold.
    max_subscriptions_per_connection: int = 32
    #: Notifications buffered per subscription before they are dropped ("lagged").
    subscription_queue: int = 1000
    #: Operations in one ``doc.change`` request.
    max_ops_per_change: int = 10_000
    #: Documents in one ``doc.create_many`` / ``doc.change_many`` / ``doc.get_many`` request.
    max_docs_per_batch: int = 10_000
    #: Upper bound of ``limit`` in ``doc.changes``.
    max_changes_page: int = 10_000
    #: How long shutdown waits for requests in flight before cutting them off.
    shutdown_grace_seconds: float = 10.0
    #: Attachment uploads one connection may have open at once.
    max_uploads_per_connection: int = 4
    #: An open upload that receives no data for this long is aborted (it holds its document).
    upload_idle_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    listen: tuple[str, ...] = ()
    #: Per listener: connections whose peer has not authenticated yet; more are closed at once.
    max_pending_handshakes: int = 16
    #: Seconds from the TCP accept (TLS included) until the peer must have authenticated.
    handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The reference's HTTP sync API (``[http]``): served only when ``listen`` names addresses."""

    listen: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: The server name in ``/.well-known/mindoodb-server-info`` (default: the host name).
    name: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    #: ``(username, publicsignkey)`` of the system admins; none: no ``/system/*`` API.
    system_admins: tuple[tuple[str, str], ...] = ()
    #: Addresses or networks ``/system/*`` answers (empty: any).
    system_allowed_ips: tuple[str, ...] = ()
    #: Web origins a browser may let call the API (``*``: any; empty: none, as the reference).
    cors_origins: tuple[str, ...] = ()
    rate_limits: RateLimits = field(default_factory=RateLimits)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)


@dataclass(frozen=True, slots=True)
class TenantConfig:
    id: str
    password_file: Path | None = None
    credential: str | None = None
    databases: tuple[str, ...] = ()
    auto_unlock: bool = True

    @property
    def credential_name(self) -> str:
        """Name of the systemd credential holding the password (default: the tenant id)."""
        return self.credential or self.id


@dataclass(frozen=True, slots=True)
class PeerConfig:
    address: str
    tenants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    address: str
    tenant: str
    databases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path | None = None
    socket: Path | None = None
    log_level: str = "INFO"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    #: mDNS discovery and WebRTC (``[discovery]``, ``[webrtc]``); both off by default.
    peer_network: PeerNetworkConfig = field(default_factory=PeerNetworkConfig)
    limits: Limits = field(default_factory=Limits)
    tenants: tuple[TenantConfig, ...] = ()
    peers: tuple[PeerConfig, ...] = ()
    upstreams: tuple[UpstreamConfig, ...] = ()
    #: The file this was read from (None: built-in defaults).
    source: Path | None = None

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        return None


# -- reading -------------------------------------------------------------------------------------
class _Table:
    """A TOML table being read: typed getters that name the key, and a check for leftovers."""

    def __init__(self, raw: object, prefix: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError("expected a table", prefix or None)
        self._raw: dict[str, Any] = raw
        self._prefix = prefix
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def get(self, name: str, check: Callable[[object, str], T], default: T) -> T:
        self._seen.add(name)
        if name not in self._raw:
            return default
        return check(self._raw[name], self.key(name))

    def table(self, name: str) -> _Table:
        self._seen.add(name)
        return _Table(self._raw.get(name, {}), self.key(name))

    def raw(self, name: str) -> object:
        self._seen.add(name)
        return self._raw.get(name)

    def finish(self) -> None:
        for name in self._raw:
            if name not in self._seen:
                raise ConfigError("unknown key", self.key(name))


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("expected a non-empty string", key)
    return value


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, either behind ``tcp://``; ``ValueError`` otherwise."""
    host, sep, port = text.removeprefix("tcp://").rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


def _address(value: object, key: str) -> str:
    text = _string(value, key)
    if len(text) > MAX_ADDRESS_CHARS:
        raise ConfigError(f"longer than {MAX_ADDRESS_CHARS} characters", key)
    try:
        parse_address(text)
    except ValueError as exc:
        raise ConfigError(f"{exc} (expected host:port, [v6]:port or tcp://...)", key) from None
    return text


def is_http_address(address: str) -> bool:
    """Whether a peer address names an HTTP sync server rather than a native peer."""
    return address.startswith(("http://", "https://"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _peer_address(value: object, key: str) -> str:
    """A native peer (``host:port``, ``tcp://...``) or an HTTP sync server URL.

    Plain ``http://`` is only for a server on this machine: elsewhere the bearer token and the
    metadata would cross the network in clear.
    """
    text = _string(value, key)
    if not is_http_address(text):
        return _address(text, key)
    if len(text) > MAX_ADDRESS_CHARS:
        raise ConfigError(f"longer than {MAX_ADDRESS_CHARS} characters", key)
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ConfigError("the URL's port is not a number from 0 to 65535", key) from None
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("expected https://host[:port][/path] with no query or credentials", key)
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError("plain http:// only to a loopback address; use https://", key)
    return text.rstrip("/")


def _path(value: object, key: str) -> Path:
    path = Path(_string(value, key))
    if not path.is_absolute():
        raise ConfigError("expected an absolute path", key)
    return path


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("expected true or false", key)
    return value


def _int_range(low: int, high: int) -> Callable[[object, str], int]:
    def check(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("expected an integer", key)
        if not low <= value <= high:
            raise ConfigError(f"must be between {low} and {high}", key)
        return value

    return check


def _seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("expected a number of seconds", key)
    if not 0 <= value <= 3600:
        raise ConfigError("must be between 0 and 3600", key)
    return float(value)


def _positive_seconds(value: object, key: str) -> float:
    seconds = _seconds(value, key)
    if seconds == 0:
        raise ConfigError("must be more than 0", key)
    return seconds


def _log_level(value: object, key: str) -> str:
    text = _string(value, key).upper()
    if text not in LOG_LEVELS:
        raise ConfigError(f"must be one of {', '.join(LOG_LEVELS)}", key)
    return text


def _names(what: str) -> Callable[[object, str], tuple[str, ...]]:
    def check(value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list of {what}s", key)
        out: list[str] = []
        for index, item in enumerate(value):
            try:
                out.append(check_component(item, what))
            except MindoodError as exc:
                raise ConfigError(str(exc), f"{key}[{index}]") from None
        return tuple(out)

    return check


def _addresses(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("expected a list of addresses", key)
    return tuple(_address(item, f"{key}[{i}]") for i, item in enumerate(value))


_LIMIT_RANGES: Mapping[str, Callable[[object, str], Any]] = {
    "max_frame_bytes": _int_range(1024, 1 << 30),
    "max_connections": _int_range(1, 100_000),
    "max_inflight_per_connection": _int_range(1, 10_000),
    "max_subscriptions_per_connection": _int_range(1, 10_000),
    "subscription_queue": _int_range(2, 1_000_000),
    "max_ops_per_change": _int_range(1, 1_000_000),
    "max_docs_per_batch": _int_range(1, 1_000_000),
    "max_changes_page": _int_range(1, 1_000_000),
    "shutdown_grace_seconds": _seconds,
    "max_uploads_per_connection": _int_range(1, 1000),
    "upload_idle_seconds": _positive_seconds,
}


def _limits(table: _Table) -> Limits:
    defaults = Limits()
    values = {
        f.name: table.get(f.name, _LIMIT_RANGES[f.name], getattr(defaults, f.name))
        for f in fields(Limits)
    }
    table.finish()
    return Limits(**values)


def _tenants(raw: object) -> tuple[TenantConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError("expected a table of [tenants.<id>] tables", "tenants")
    out: list[TenantConfig] = []
    for tenant_id, body in raw.items():
        try:
            check_component(tenant_id, "tenant id")
        except MindoodError as exc:
            raise ConfigError(str(exc), f"tenants.{tenant_id}") from None
        table = _Table(body, f"tenants.{tenant_id}")
        credential = table.get("credential", _string, None)
        if credential is not None and ("/" in credential or credential in (".", "..")):
            raise ConfigError("must be a credential name, not a path", table.key("credential"))
        out.append(
            TenantConfig(
                id=tenant_id,
                password_file=table.get("password_file", _path, None),
                credential=credential,
                databases=table.get("databases", _names("database name"), ()),
                auto_unlock=table.get("auto_unlock", _bool, True),
            )
        )
        table.finish()
    return tuple(out)


def _array_of_tables(raw: object, key: str) -> list[_Table]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("expected an array of tables ([[...]])", key)
    return [_Table(item, f"{key}[{i}]") for i, item in enumerate(raw)]


def _required(table: _Table, name: str, check: Callable[[object, str], T]) -> T:
    value = table.get(name, check, None)
    if value is None:
        raise ConfigError("is required", table.key(name))
    return value


def _peers(raw: object) -> tuple[PeerConfig, ...]:
    out: list[PeerConfig] = []
    for table in _array_of_tables(raw, "peers"):
        out.append(
            PeerConfig(
                address=_required(table, "address", _peer_address),
                tenants=table.get("tenants", _names("tenant id"), ()),
            )
        )
        table.finish()
    return tuple(out)


def _upstreams(raw: object) -> tuple[UpstreamConfig, ...]:
    out: list[UpstreamConfig] = []
    for table in _array_of_tables(raw, "upstreams"):
        tenant = _required(table, "tenant", _string)
        try:
            check_component(tenant, "tenant id")
        except MindoodError as exc:
            raise ConfigError(str(exc), table.key("tenant")) from None
        out.append(
            UpstreamConfig(
                address=_required(table, "address", _peer_address),
                tenant=tenant,
                databases=table.get("databases", _names("database name"), ()),
            )
        )
        table.finish()
    return tuple(out)


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("expected a list of strings", key)
    return tuple(_string(item, f"{key}[{i}]") for i, item in enumerate(value))


def _ice_servers(raw: object) -> tuple[IceServer, ...]:
    servers = []
    for table in _array_of_tables(raw, "webrtc.ice_servers"):
        urls = _required(table, "urls", _strings)
        for i, url in enumerate(urls):
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ConfigError("expected a stun: or turn: URL", f"{table.key('urls')}[{i}]")
        servers.append(
            IceServer(
                urls=urls,
                username=table.get("username", _string, None),
                credential=table.get("credential", _string, None),
            )
        )
        table.finish()
    return tuple(servers)


def _peer_network(discovery: _Table, webrtc: _Table) -> PeerNetworkConfig:
    """mDNS never runs on an interface the operator did not name (none named: off)."""
    no_names: tuple[str, ...] = ()
    disc = DiscoveryConfig(
        interfaces=discovery.get("interfaces", _strings, no_names),
        advertise=discovery.get("advertise", _bool, True),
        dial_timeout=discovery.get("dial_timeout", _seconds, 3.0),
        grace=discovery.get("grace", _seconds, 3.0),
    )
    discovery.finish()
    no_hosts: tuple[str, ...] = ()
    hosts = webrtc.get("host_addresses", _strings, no_hosts)
    rtc = WebRtcConfig(
        enabled=webrtc.get("enabled", _bool, False),
        ice_servers=_ice_servers(webrtc.raw("ice_servers") or []),
        relay_only=webrtc.get("relay_only", _bool, False),
        host_addresses=hosts or None,
        connect_timeout=webrtc.get("connect_timeout", _positive_seconds, 30.0),
        accept=webrtc.get("accept", _bool, True),
        auto_connect=webrtc.get("auto_connect", _bool, False),
        auto_interval=webrtc.get("auto_interval", _seconds, 10.0),
    )
    webrtc.finish()
    return PeerNetworkConfig(discovery=disc, webrtc=rtc)


def _system_admins(raw: object) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for table in _array_of_tables(raw, "http.system_admins"):
        username = _required(table, "username", _string)
        key = _required(table, "publicsignkey", _string)
        if "BEGIN PUBLIC KEY" not in key or len(key) > 8192:
            raise ConfigError("expected an Ed25519 public key PEM", table.key("publicsignkey"))
        out.append((username, "\n".join(line.strip() for line in key.strip().splitlines())))
        table.finish()
    return tuple(out)


def _networks(value: object, key: str) -> tuple[str, ...]:
    entries = _strings(value, key)
    for i, entry in enumerate(entries):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError("expected an IP address or network", f"{key}[{i}]") from None
    return entries


def _origins(value: object, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, entry in enumerate(_strings(value, key)):
        try:
            out.append(check_origin(entry))
        except ValueError as exc:
            raise ConfigError(str(exc), f"{key}[{i}]") from None
    return tuple(out)


def _budget(default_max: int | None) -> Callable[[object, str], Budget]:
    """``{max, window_s}``; ``max`` may be left out where the tier has a default."""

    def check(value: object, key: str) -> Budget:
        table = _Table(value, key)
        window = table.get("window_s", _positive_seconds, 60.0)
        most = table.get("max", _int_range(0, 1_000_000_000), default_max)
        table.finish()
        if most is None:
            raise ConfigError("max is required", table.key("max"))
        return Budget(most, window)

    return check


def _rate_limits(table: _Table) -> RateLimits:
    base = RateLimits()
    overall: Budget | None = table.get("overall", _budget(None), None)
    limits = RateLimits(
        auth=table.get("auth", _budget(base.auth.max), base.auth),
        sync=table.get("sync", _budget(base.sync.max), base.sync),
        system=table.get("system", _budget(base.system.max), base.system),
        device=table.get("device", _budget(base.device.max), base.device),
        overall=overall,
        trusted_proxies=table.get("trusted_proxies", _networks, ()),
    )
    table.finish()
    return limits


def _http(table: _Table) -> HttpConfig:
    http = HttpConfig(
        listen=table.get("listen", _addresses, ()),
        tls_cert=table.get("tls_cert", _path, None),
        tls_key=table.get("tls_key", _path, None),
        name=table.get("name", _string, None),
        max_body_bytes=table.get("max_body_bytes", _int_range(64 * 1024, 1 << 30), 5 * 1024 * 1024),
        system_admins=_system_admins(table.raw("system_admins")),
        system_allowed_ips=table.get("system_allowed_ips", _networks, ()),
        cors_origins=table.get("cors_origins", _origins, ()),
        rate_limits=_rate_limits(table.table("rate_limits")),
    )
    if (http.tls_cert is None) != (http.tls_key is None):
        missing = "tls_key" if http.tls_key is None else "tls_cert"
        raise ConfigError("tls_cert and tls_key go together", table.key(missing))
    table.finish()
    return http


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build a :class:`Config` from parsed TOML; :class:`ConfigError` names the first bad key."""
    root = _Table(dict(data), "")
    daemon = root.table("daemon")
    data_dir = daemon.get("data_dir", _path, None)
    socket = daemon.get("socket", _path, None)
    log_level = daemon.get("log_level", _log_level, "INFO")
    daemon.finish()
    network_table = root.table("network")
    if network_table.raw("mdns") is not None:
        raise ConfigError(MDNS_MOVED, network_table.key("mdns"))
    network = NetworkConfig(
        listen=network_table.get("listen", _addresses, ()),
        max_pending_handshakes=network_table.get(
            "max_pending_handshakes", _int_range(1, 100_000), 16
        ),
        handshake_timeout=network_table.get("handshake_timeout", _positive_seconds, 10.0),
    )
    network_table.finish()
    http = _http(root.table("http"))
    limits = _limits(root.table("limits"))
    peer_network = _peer_network(root.table("discovery"), root.table("webrtc"))
    tenants = _tenants(root.raw("tenants"))
    peers = _peers(root.raw("peers"))
    upstreams = _upstreams(root.raw("upstreams"))
    root.finish()
    return Config(
        data_dir=data_dir,
        socket=socket,
        log_level=log_level,
        network=network,
        http=http,
        peer_network=peer_network,
        limits=limits,
        tenants=tenants,
        peers=peers,
        upstreams=upstreams,
        source=source,
    )


def load_config(path: Path | None, *, required: bool) -> Config:
    """Read ``path``; a missing file is the default configuration unless ``required``."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"configuration file {path} does not exist") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_config(data, source=path)
    except ConfigError as exc:
        located = ConfigError(f"{path}: {exc}")
        located.key = exc.key
        raise located from None


def restart_required(old: Config, new: Config) -> list[str]:
    """Keys whose new value takes effect only after a restart."""
    changed: list[str] = []
    if old.data_dir != new.data_dir:
        changed.append("daemon.data_dir")
    if old.socket != new.socket:
        changed.append("daemon.socket")
    if old.network.listen != new.network.listen:
        changed.append("network.listen")
    for key in ("max_pending_handshakes", "handshake_timeout"):
        if getattr(old.network, key) != getattr(new.network, key):
            changed.append(f"network.{key}")
    if old.http != new.http:
        changed.append("http")
    return changed


__all__ = [
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "HttpConfig",
    "Limits",
    "NetworkConfig",
    "PeerConfig",
    "TenantConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
    "restart_required",
]
