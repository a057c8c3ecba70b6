"""Every knob of livegate, read from `LIVEGATE_*` environment variables."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The real TikTok hosts; `tiktok_url` (or a per-host override) replaces them.
TIKTOK_WWW = "https://www.tiktok.com"
TIKTOK_WEBCAST = "https://webcast.tiktok.com"
TIKTOK_PASSPORT_HOSTS = (
    "https://web-va.tiktok.com",
    "https://web-sg.tiktok.com",
    "https://us.tiktok.com",
    "https://login-no1a.www.tiktok.com",
    "https://www.tiktok.com",
)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEGATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    data_dir: Path = Path(".")
    database_url: str | None = None
    redis_url: str | None = None
    # Comma-separated, newest first. Empty: a key file in data_dir, created on first use.
    secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    tiktok_url: str | None = None
    tiktok_www_url: str | None = None
    tiktok_webcast_url: str | None = None
    tiktok_passport_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    signer_url: str | None = None
    signer_api_key: str | None = None
    upstream_timeout: float = 3.5

    access_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    code_ttl: int = 60
    login_ttl: int = 15 * 60
    qr_poll_interval: float = 2.0
    purge_interval: int = 300

    rate_limit_connect: str = "30/minute"
    rate_limit_calls: str = "600/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_failures: str = "20/minute"
    rate_limit_signup: str = "10/hour"
    # Event streams (GET /webcast/events) open at once per API key and per grant (4429 past).
    events_max_streams_per_key: int = 200
    events_max_streams_per_grant: int = 20
    # The Server-Sent Events stream's resume buffer (Last-Event-ID), per room and credential:
    # at most this many events, none older than this many seconds (in Redis when configured).
    events_resume_max_events: int = 1000
    events_resume_max_age: float = 600.0
    # Seconds a room's SSE feed keeps recording after its last subscriber left, so that a
    # reconnect finds what came in between.
    events_resume_linger: float = 15.0
    # Seconds between the SSE stream's keep-alive comments.
    events_sse_keepalive: float = 15.0
    # Comma-separated IPs or CIDRs of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed. Empty: no forwarded header is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Request size limits, enforced before the request is read further (413 / 431).
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 16 * 1024

    signup: bool = True
    secret_grace_period: int = 24 * 3600
    # Browser sessions: developers on the dashboard, end users on /account (sliding expiry).
    dashboard_session_ttl: int = 12 * 3600
    account_session_ttl: int = 3600
    log_level: str = "info"
    log_json: bool = False

    # Operations (README, "Running in production"). `serve`'s worker processes (its --workers
    # wins); unset: one per CPU core.
    workers: int | None = Field(default=None, ge=1)
    # Metrics: on a port of their own, served by `livegate serve`'s parent process, and/or at
    # /metrics behind this bearer token.
    metrics_port: int | None = None
    metrics_token: SecretStr | None = None
    # Seconds `serve` waits for requests in flight after SIGTERM before cancelling them.
    shutdown_timeout: int = 20

    # NoDecode hands these over as the raw string; split before the list type is checked.
    _csv_lists = field_validator(
        "secret_keys", "tiktok_passport_urls", "trusted_proxies", mode="before"
    )(_split_csv)

    @property
    def issuer(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'livegate.db').resolve()}"

    @property
    def www_url(self) -> str:
        return (self.tiktok_www_url or self.tiktok_url or TIKTOK_WWW).rstrip("/")

    @property
    def webcast_url(self) -> str:
        return (self.tiktok_webcast_url or self.tiktok_url or TIKTOK_WEBCAST).rstrip("/")

    @property
    def passport_urls(self) -> list[str]:
        if self.tiktok_passport_urls:
            return [u.rstrip("/") for u in self.tiktok_passport_urls]
        if self.tiktok_url:
            return [self.tiktok_url.rstrip("/")]
        return list(TIKTOK_PASSPORT_HOSTS)

    @cached_property
    def server_keys(self) -> list[bytes]:
        """The vault's server keys, newest first, as raw bytes."""
        if self.secret_keys:
            return [k.encode() for k in self.secret_keys]
        path = self.data_dir / "livegate.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return [path.read_text().strip().encode()]
