"""`livegate serve`: migrations once, then the gateway in one process or in N workers.

With more than one worker, uvicorn's supervisor starts each worker as a fresh interpreter
(multiprocessing's spawn) that builds the app with `create_app_from_env`: every setting comes
from the environment, so the CLI flags are put there first. The parent, before any worker:

- applies the migrations (workers never do, so they never race each other to);
- creates the server key file when LIVEGATE_SECRET_KEYS is unset (the same race);
- makes a fresh directory for prometheus-client's multiprocess mode and names it in
  PROMETHEUS_MULTIPROC_DIR; a worker that ends has its live gauges removed (`Supervisor`);
- serves LIVEGATE_METRICS_PORT, when set, summing every worker.

SIGTERM (to the parent, which passes it on) drains: the listening socket closes, requests in
flight get LIVEGATE_SHUTDOWN_TIMEOUT seconds to finish, and uvicorn closes every open
WebSocket (the relays and event streams) with 1012 "service restart", so clients reconnect
to another instance.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from livegate.config import Settings
from livegate.db.migrate import upgrade
from livegate.limits import head_limited_protocol, server_limits
from livegate.logs import setup_logging, uvicorn_log_config

log = logging.getLogger("livegate.serve")

APP_FACTORY = "livegate.serving:create_app_from_env"
# Workers get the HTTP protocol by name: uvicorn hands its config to each worker pickled,
# and the class limits.head_limited_protocol makes cannot be pickled.
HTTP_PROTOCOL = "livegate.serving:HttpProtocol"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def create_app_from_env() -> FastAPI:
    """The app of one worker: settings from the environment, logging as the parent's."""
    from livegate import metrics
    from livegate.app import create_app

    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json)
    metrics.worker_started()
    return create_app(settings)


def __getattr__(name: str) -> Any:
    if name == "HttpProtocol":
        return head_limited_protocol(Settings().max_header_bytes)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def per_worker_warning(workers: int, settings: Settings) -> str | None:
    if workers <= 1 or settings.redis_url:
        return None
    return (
        f"{workers} workers without LIVEGATE_REDIS_URL: each worker keeps its own rate-limit "
        f"counters, so every limit (webcast calls, sign-in and client-authentication failures, "
        f"sign-ups) is counted per worker and a caller may get up to {workers} times the "
        f"configured limit from this instance. Set LIVEGATE_REDIS_URL to count in one place."
    )


@contextmanager
def metrics_directory() -> Iterator[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run's workers, removed at the end."""
    path = tempfile.mkdtemp(prefix="livegate-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor; a worker that ends (dies and is replaced, or is retired
    by SIGHUP or SIGTTOU) has its live gauges taken out of the metrics."""

    def keep_subprocess_alive(self) -> None:
        self._reaping(super().keep_subprocess_alive)

    def handle_signals(self) -> None:
        self._reaping(super().handle_signals)

    def _reaping(self, step: Callable[[], None]) -> None:
        from prometheus_client import multiprocess

        before = {p.pid for p in self.processes}
        step()
        for pid in before - {p.pid for p in self.processes}:
            if pid is not None:
                multiprocess.mark_process_dead(pid)


def _start_metrics_port(settings: Settings) -> Callable[[], None]:
    """Serve the metrics on LIVEGATE_METRICS_PORT from this process; returns the stop."""
    from prometheus_client import start_http_server

    from livegate import metrics
    from livegate.db.engine import Database

    database = Database(settings.db_url)
    gauges = metrics.DatabaseGauges(database, settings.server_keys)
    if settings.metrics_port is None:
        raise ValueError("the metrics server needs LIVEGATE_METRICS_PORT")
    server, thread = start_http_server(
        settings.metrics_port, addr=settings.host, registry=metrics.scrape_registry(gauges)
    )
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)
        database.dispose()

    return stop


def uvicorn_config(settings: Settings, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=uvicorn_log_config(),
        # The app believes forwarded headers from LIVEGATE_TRUSTED_PROXIES only (app.py);
        # uvicorn's own layer would believe them from 127.0.0.1 as well.
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        **{**server_limits(settings), "http": HTTP_PROTOCOL},
    )


def serve(settings: Settings, workers: int) -> None:
    """Run the gateway until SIGTERM or SIGINT (see the module docstring)."""
    setup_logging(settings.log_level, json_lines=settings.log_json)
    upgrade(settings.db_url)
    settings.server_keys  # noqa: B018  # made here, once, before any worker reads it
    # What the CLI flags set, for the workers' Settings().
    os.environ["LIVEGATE_HOST"] = settings.host
    os.environ["LIVEGATE_PORT"] = str(settings.port)
    warning = per_worker_warning(workers, settings)
    if warning:
        log.warning(warning)
    if workers <= 1:
        _serve_here(settings)
        return
    with metrics_directory():
        config = uvicorn_config(settings, workers)
        stop_metrics = _start_metrics_port(settings) if settings.metrics_port else None
        try:
            Supervisor(config, sockets=[config.bind_socket()]).run()
        finally:
            if stop_metrics:
                stop_metrics()


def _serve_here(settings: Settings) -> None:
    """One process: the app in this one, the metrics from its own registry."""
    config = uvicorn_config(settings, 1)
    stop_metrics = _start_metrics_port(settings) if settings.metrics_port else None
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if stop_metrics:
            stop_metrics()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
