"""Configuration parsing (every bad key named) and default paths (XDG and systemd)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mindood.daemon.config import (
    Config,
    ConfigError,
    Limits,
    load_config,
    parse_address,
    parse_config,
    restart_required,
)
from mindood.daemon.paths import (
    UnsafeDirectoryError,
    client_socket,
    default_config_file,
    default_data_dir,
    default_socket,
    ensure_private_dir,
)
from protocol.http.ratelimit import Budget, RateLimits

FULL = """
[daemon]
data_dir = "/var/lib/mindood"
socket = "/run/mindood/mindood.sock"
log_level = "debug"

[network]
listen = ["tcp://0.0.0.0:7890"]
max_pending_handshakes = 4
handshake_timeout = 2.5

[limits]
max_connections = 8
shutdown_grace_seconds = 2.5

[tenants.acme]
password_file = "/etc/mindood/acme.password"
databases = ["contacts", "notes"]

[tenants.beta]
credential = "beta-pw"
auto_unlock = false

[[peers]]
address = "tcp://10.0.0.5:7890"
tenants = ["acme"]

[[upstreams]]
address = "tcp://central.example:7890"
tenant = "acme"
databases = ["contacts"]
"""


def test_no_file_is_the_default_configuration(tmp_path: Path) -> None:
    assert load_config(tmp_path / "missing.toml", required=False) == Config()
    assert load_config(None, required=False) == Config()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", required=True)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, required=True) == Config(source=empty)


def test_full_configuration(tmp_path: Path) -> None:
    path = tmp_path / "mindood.toml"
    path.write_text(FULL)
    config = load_config(path, required=True)
    assert config.data_dir == Path("/var/lib/mindood")
    assert config.socket == Path("/run/mindood/mindood.sock")
    assert config.log_level == "DEBUG"
    assert config.network.listen == ("tcp://0.0.0.0:7890",)
    assert config.network.max_pending_handshakes == 4
    assert config.network.handshake_timeout == 2.5
    assert config.limits == Limits(max_connections=8, shutdown_grace_seconds=2.5)
    acme = config.tenant("acme")
    assert acme is not None and acme.password_file == Path("/etc/mindood/acme.password")
    assert acme.databases == ("contacts", "notes") and acme.credential_name == "acme"
    beta = config.tenant("beta")
    assert beta is not None and beta.credential_name == "beta-pw" and not beta.auto_unlock
    assert config.peers[0].address == "tcp://10.0.0.5:7890" and config.peers[0].tenants == ("acme",)
    assert config.upstreams[0].tenant == "acme"
    assert config.source == path


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[daemon]\ndata_dirr = '/x'", "daemon.data_dirr"),
        ("[daemon]\ndata_dir = 'relative'", "daemon.data_dir"),
        ("[daemon]\nlog_level = 'LOUD'", "daemon.log_level"),
        ("[limits]\nmax_connections = 'many'", "limits.max_connections"),
        ("[limits]\nmax_connections = 0", "limits.max_connections"),
        ("[limits]\nmax_frame_bytes = true", "limits.max_frame_bytes"),
        ("[network]\nmdns = true", "network.mdns"),
        ("[network]\nlisten = 'tcp://x'", "network.listen"),
        ("[network]\nmax_pending_handshakes = 0", "network.max_pending_handshakes"),
        ("[network]\nhandshake_timeout = 'soon'", "network.handshake_timeout"),
        ("[network]\nhandshake_timeout = 0", "network.handshake_timeout"),
        ("[limits]\nupload_idle_seconds = 0", "limits.upload_idle_seconds"),
        ("[tenants.acme]\ndatabases = ['../x']", "tenants.acme.databases[0]"),
        ("[tenants.acme]\ncredential = '../etc/shadow'", "tenants.acme.credential"),
        ("[tenants.acme]\nunknown = 1", "tenants.acme.unknown"),
        ("[tenants.'bad/id']\n", "tenants.bad/id"),
        ("[[peers]]\ntenants = ['acme']", "peers[0].address"),
        ("[[upstreams]]\naddress = 'tcp://x'", "upstreams[0].tenant"),
        ("[[upstreams]]\naddress = 'http://example.com'\ntenant = 'acme'", "upstreams[0].address"),
        ("peers = 3", "peers"),
        ("surprise = 1", "surprise"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path, required=True)
    assert info.value.key == key
    assert key in str(info.value) and str(path) in str(info.value)


def test_an_upstream_may_be_an_http_sync_server(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        "[[upstreams]]\naddress = 'https://sync.example.com/base'\ntenant = 'acme'\n"
        "[[upstreams]]\naddress = 'http://127.0.0.1:8080'\ntenant = 'beta'\n"
    )
    config = load_config(path, required=True)
    assert [u.address for u in config.upstreams] == [
        "https://sync.example.com/base",
        "http://127.0.0.1:8080",
    ]


@pytest.mark.parametrize("value", ["true", "false"])
def test_network_mdns_points_to_the_discovery_table(tmp_path: Path, value: str) -> None:
    """The old switch was read by nothing: refused, with where mDNS is really configured."""
    path = tmp_path / "old.toml"
    path.write_text(f"[network]\nmdns = {value}\n")
    with pytest.raises(ConfigError, match=r"network\.mdns: no such setting.*\[discovery\]"):
        load_config(path, required=True)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[daemon")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, required=True)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, required=True)


def test_restart_required_lists_what_cannot_change_live() -> None:
    old = parse_config({})
    new = parse_config(
        {
            "daemon": {"socket": "/run/x.sock", "log_level": "DEBUG"},
            "network": {"listen": ["127.0.0.1:7890"]},
            "limits": {"max_connections": 2},
        }
    )
    assert restart_required(old, new) == ["daemon.socket", "network.listen"]
    assert restart_required(old, old) == []


def test_default_paths_follow_xdg_and_systemd() -> None:
    home = {"HOME": "/home/ada"}
    assert default_data_dir(home) == Path("/home/ada/.local/share/mindood")
    assert default_data_dir({**home, "XDG_DATA_HOME": "/d"}) == Path("/d/mindood")
    assert default_data_dir({**home, "XDG_DATA_HOME": "relative"}) == Path(
        "/home/ada/.local/share/mindood"
    )
    assert default_data_dir({**home, "STATE_DIRECTORY": "/var/lib/mindood:/x"}) == Path(
        "/var/lib/mindood"
    )
    assert default_config_file(home) == Path("/home/ada/.config/mindood/mindood.toml")
    assert default_config_file({**home, "CONFIGURATION_DIRECTORY": "/etc/mindood"}) == Path(
        "/etc/mindood/mindood.toml"
    )
    assert default_socket({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/mindood/mindood.sock"
    )
    assert default_socket({"RUNTIME_DIRECTORY": "/run/mindood"}) == Path(
        "/run/mindood/mindood.sock"
    )
    assert default_socket({}) == Path(f"/tmp/mindood-{os.getuid()}/mindood.sock")
    assert client_socket({"MINDOOD_SOCKET": "/x.sock", "XDG_RUNTIME_DIR": "/r"}) == Path("/x.sock")
    assert client_socket({"XDG_RUNTIME_DIR": "/r"}) == Path("/r/mindood/mindood.sock")


def test_private_directory_is_checked(tmp_path: Path) -> None:
    fresh = ensure_private_dir(tmp_path / "fresh")
    assert fresh.stat().st_mode & 0o777 == 0o700
    assert ensure_private_dir(fresh) == fresh
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(UnsafeDirectoryError, match="open to other users"):
        ensure_private_dir(shared)
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafeDirectoryError, match="not a directory"):
        ensure_private_dir(tmp_path / "file")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:7890", ("127.0.0.1", 7890)),
        ("tcp://10.0.0.5:7890", ("10.0.0.5", 7890)),
        ("[::1]:0", ("::1", 0)),
        ("node.local:65535", ("node.local", 65535)),
    ],
)
def test_peer_addresses_are_parsed(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected
    parse_config({"peers": [{"address": address}]})


@pytest.mark.parametrize("address", ["nohostport", "host:", ":80", "host:99999", "host:x1"])
def test_bad_addresses_are_config_errors_naming_the_key(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"peers": [{"address": address}]})
    assert "peers[0].address" in str(info.value)


def test_discovery_and_webrtc_are_off_unless_configured() -> None:
    config = parse_config({})
    assert not config.peer_network.discovery.enabled
    assert not config.peer_network.webrtc.enabled
    config = parse_config(
        {
            "discovery": {"interfaces": ["eth0"], "grace": 1.5},
            "webrtc": {
                "enabled": True,
                "ice_servers": [
                    {"urls": ["stun:10.0.0.1:3478"]},
                    {"urls": ["turn:10.0.0.1:3478"], "username": "u", "credential": "c"},
                ],
            },
        }
    )
    assert config.peer_network.discovery.interfaces == ("eth0",)
    assert config.peer_network.discovery.grace == 1.5
    assert [s.urls for s in config.peer_network.webrtc.ice_servers] == [
        ("stun:10.0.0.1:3478",),
        ("turn:10.0.0.1:3478",),
    ]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"discovery": {"interfaces": "eth0"}}, "discovery.interfaces"),
        ({"discovery": {"bogus": 1}}, "discovery.bogus"),
        ({"webrtc": {"enabled": "yes"}}, "webrtc.enabled"),
        ({"webrtc": {"ice_servers": [{"urls": ["http://x"]}]}}, "webrtc.ice_servers[0].urls[0]"),
        ({"webrtc": {"ice_servers": [{}]}}, "webrtc.ice_servers[0].urls"),
    ],
)
def test_bad_network_settings_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert key in str(info.value)


def test_http_is_off_by_default_and_configurable(tmp_path: Path) -> None:
    assert not Config().http.enabled
    config = parse_config(
        {
            "http": {
                "listen": ["127.0.0.1:8443", "[::1]:8443"],
                "tls_cert": str(tmp_path / "c.pem"),
                "tls_key": str(tmp_path / "k.pem"),
                "name": "edge-1",
                "max_body_bytes": 1024 * 1024,
            }
        }
    )
    assert config.http.enabled and config.http.listen == ("127.0.0.1:8443", "[::1]:8443")
    assert config.http.tls_cert == tmp_path / "c.pem" and config.http.name == "edge-1"
    assert config.http.max_body_bytes == 1024 * 1024
    plain = parse_config({"http": {"listen": ["127.0.0.1:8443"]}}).http
    assert plain.tls_cert is None and plain.tls_key is None
    assert "http" in restart_required(Config(), config)


_PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"


def test_http_system_admins_are_read_from_a_toml_file(tmp_path: Path) -> None:
    """The PEM of a multi-line TOML string may be indented: each line is trimmed."""
    path = tmp_path / "d.toml"
    path.write_text(
        "[http]\n"
        'system_allowed_ips = ["127.0.0.1", "10.0.0.0/8"]\n'
        "[[http.system_admins]]\n"
        'username = "CN=sysadmin/O=acme"\n'
        "publicsignkey = '''\n    -----BEGIN PUBLIC KEY-----\n    MCowBQYDK2VwAyEA\n"
        "    -----END PUBLIC KEY-----\n    '''\n"
    )
    http = load_config(path, required=True).http
    assert http.system_admins == (("CN=sysadmin/O=acme", _PEM),)
    assert http.system_allowed_ips == ("127.0.0.1", "10.0.0.0/8")
    assert Config().http.system_admins == ()


def test_http_rate_limits_default_to_the_reference_tiers_and_are_configurable() -> None:
    assert Config().http.rate_limits == RateLimits()
    limits = parse_config(
        {
            "http": {
                "rate_limits": {
                    "auth": {"max": 10},
                    "sync": {"max": 50, "window_s": 10},
                    "overall": {"max": 0},
                    "trusted_proxies": ["10.0.0.0/8"],
                }
            }
        }
    ).http.rate_limits
    assert limits.auth == Budget(10) and limits.sync == Budget(50, 10.0)
    assert limits.system == RateLimits().system and not limits.overall_budget().enabled
    assert limits.trusted_proxies == ("10.0.0.0/8",)


def test_http_cors_origins_are_off_by_default_and_kept_as_origins() -> None:
    assert Config().http.cors_origins == ()
    http = parse_config(
        {"http": {"cors_origins": ["https://App.Example.com", "http://localhost:5173/", "*"]}}
    ).http
    assert http.cors_origins == ("https://app.example.com", "http://localhost:5173", "*")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"listen": "127.0.0.1:1"}, "http.listen"),
        ({"listen": ["nohost"]}, "http.listen[0]"),
        ({"tls_cert": "/x.pem"}, "http.tls_key"),
        ({"tls_key": "/x.pem"}, "http.tls_cert"),
        ({"tls_cert": "relative.pem", "tls_key": "/k"}, "http.tls_cert"),
        ({"max_body_bytes": 10}, "http.max_body_bytes"),
        ({"bogus": 1}, "http.bogus"),
        ({"system_admins": [{"username": "a"}]}, "http.system_admins[0].publicsignkey"),
        ({"system_admins": [{"username": "a", "publicsignkey": "x"}]}, "publicsignkey"),
        ({"system_admins": [{"publicsignkey": _PEM}]}, "http.system_admins[0].username"),
        ({"system_admins": [{"username": "a", "publicsignkey": _PEM, "x": 1}]}, "[0].x"),
        ({"system_allowed_ips": ["10.0.0.0/33"]}, "http.system_allowed_ips[0]"),
        ({"cors_origins": "https://a.example"}, "http.cors_origins"),
        ({"rate_limits": {"auth": {"max": -1}}}, "http.rate_limits.auth.max"),
        ({"rate_limits": {"sync": {"window_s": 0}}}, "http.rate_limits.sync.window_s"),
        ({"rate_limits": {"overall": {"window_s": 5}}}, "http.rate_limits.overall.max"),
        ({"rate_limits": {"auth": {"max": 1, "x": 1}}}, "http.rate_limits.auth.x"),
        ({"rate_limits": {"trusted_proxies": ["nope"]}}, "http.rate_limits.trusted_proxies[0]"),
        ({"rate_limits": {"bogus": {}}}, "http.rate_limits.bogus"),
        ({"cors_origins": ["https://a.example/app"]}, "http.cors_origins[0]"),
        ({"cors_origins": ["a.example"]}, "http.cors_origins[0]"),
        ({"cors_origins": ["https://a.example:99999"]}, "http.cors_origins[0]"),
    ],
)
def test_bad_http_settings_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"http": raw})
    assert key in str(info.value)
