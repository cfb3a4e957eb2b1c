"""``mindood run``: set up logging and the test KDF switch, read the configuration, run."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

import uvloop

from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.daemon.config import ConfigError, load_config
from mindood.daemon.daemon import Daemon, DaemonOptions, ServiceFactory
from mindood.daemon.lock import AlreadyRunningError
from mindood.daemon.paths import UnsafeDirectoryError, default_config_file
from mindood.daemon.services import ServiceStartError
from mindood.rpc.server import SocketBindError

log = logging.getLogger("mindood.daemon")

EXIT_OK = 0
EXIT_FAILURE = 1
#: Bad configuration or an unusable path: restarting will not help (RestartPreventExitStatus=2).
EXIT_CONFIG = 2


def default_services() -> list[ServiceFactory]:
    """The services ``mindood run`` starts beside the RPC."""
    from mindood.daemon.sync_service import sync_service

    return [sync_service]


def run(
    options: DaemonOptions,
    env: Mapping[str, str] | None = None,
    services: Sequence[ServiceFactory] | None = None,
) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; returns the exit code."""
    env = dict(os.environ if env is None else env)
    try:
        iterations = apply_test_pbkdf2_iterations_from_env()
    except ValueError as exc:
        print(f"mindood: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if iterations is not None:
        log.warning(
            "TEST MODE: PBKDF2 lowered to %d iterations by MINDOOD_TEST_PBKDF2_ITERATIONS; "
            "never use this for real data",
            iterations,
        )
    config_path = options.config_path or default_config_file(env)
    options = DaemonOptions(
        config_path=config_path,
        config_required=options.config_required,
        data_dir=options.data_dir,
        socket=options.socket,
        log_level=options.log_level,
    )
    try:
        config = load_config(config_path, required=options.config_required)
    except ConfigError as exc:
        print(f"mindood: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if options.log_level is None:
        logging.getLogger().setLevel(config.log_level)
    factories = default_services() if services is None else services
    daemon = Daemon(options, env, config, services=factories)
    try:
        return uvloop.run(daemon.run())
    except AlreadyRunningError as exc:
        print(f"mindood: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (SocketBindError, UnsafeDirectoryError, ServiceStartError) as exc:
        print(f"mindood: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"mindood: {exc}", file=sys.stderr)
        return EXIT_FAILURE


__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "default_services", "run"]
