"""The daemon itself: liveness, status, configuration, events, peers and sync."""

from __future__ import annotations

from mindood.rpc.schema.common import OPT_DB, OPT_TENANT
from mindood.rpc.schema.model import Method, opt

METHODS = (
    Method("ping", "Is the daemon answering?", (), '"pong"', cli="ping"),
    Method(
        "status",
        "The daemon's state: version, data dir, tenants, stores, RPC and sync.",
        (),
        "{version, pid, data_dir, config, uptime_seconds, tenants, peers, services, rpc, systemd,"
        " sync: (as sync.status)}",
        cli="status",
    ),
    Method(
        "config.reload",
        "Re-read the configuration file; the old one stays if the new one has an error.",
        (),
        "{reloaded, ...}",
        cli="reload",
        errors=("ConfigError",),
    ),
    Method(
        "rpc.methods",
        "Every method this daemon serves, with parameters, result shape and docs.",
        (),
        "{methods: [{name, doc, params: [{name, type, required, doc}], result, errors, cli}]}",
        cli="rpc methods",
    ),
    Method(
        "subscribe",
        "Start a stream of notifications on this connection (doc.changed, peer.*, sync.*).",
        (
            opt("topics", "array", "topics to receive (default: all)"),
            OPT_TENANT,
            OPT_DB,
        ),
        "{subscription, topics}; then notifications carrying 'subscription': doc.changed"
        " {tenant, db, doc_ids}, peer.connected {peer_id, address, tenants, transport, user,"
        " device}, peer.disconnected {peer_id, address, tenants, reason}, sync.progress"
        " {peer_id, address, tenant, db, sent, sent_bytes, received, received_bytes, done},"
        " tenant.state {tenant, state}",
        cli="watch",
        errors=("LimitExceededError",),
    ),
    Method(
        "unsubscribe",
        "End a subscription of this connection.",
        (opt("subscription", "integer", "the id subscribe answered"),),
        "{subscription, closed}",
        cli="watch",
        errors=("NotFoundError",),
    ),
    Method(
        "peers.list",
        "Connected and configured peers.",
        (),
        "{peers: [{peer_id, address, tenants, transport, user, device, direction, state,"
        " databases: [{db, sent, sent_bytes, received, received_bytes, syncing, error}],"
        " connected_at}], configured: [{address, tenants}], upstreams: [{address, tenant}]}",
        cli="peers",
    ),
    Method(
        "sync.status",
        "Per-peer and per-database sync state, this node's ids, role and upstreams.",
        (),
        "{listening, node_ids: {tenant: id}, role, roles, upstreams: [{address, tenant,"
        " connected}], peers: [...], ...}",
        cli="sync status",
    ),
    Method(
        "sync.now",
        "Sync now instead of waiting for the next round (all, or one tenant/db/peer).",
        (OPT_TENANT, OPT_DB, opt("peer", "string", "only this peer (node id or address)")),
        "{started: [...]}",
        cli="sync now",
    ),
)

__all__ = ["METHODS"]
