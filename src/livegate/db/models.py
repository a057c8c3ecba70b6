"""All tables. Secrets (codes, tokens, client secrets, API keys) are stored only as digests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Developer(Base):
    __tablename__ = "developers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    logo_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    homepage_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # NULL for public clients.
    secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The secret before the last rotation keeps working until previous_secret_expires_at.
    previous_secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    theme: Mapped[str] = mapped_column(String(16), default="auto")
    mode: Mapped[str] = mapped_column(String(16), default="live")
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("developers.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TikTokAccount(Base):
    __tablename__ = "tiktok_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    sec_uid: Mapped[str] = mapped_column(String(200), default="")
    unique_id: Mapped[str] = mapped_column(String(64), default="")
    nickname: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str] = mapped_column(String(16), default="")
    avatar_url: Mapped[str] = mapped_column(String(2000), default="")
    room_id: Mapped[str] = mapped_column(String(32), default="")
    has_live_permission: Mapped[bool] = mapped_column(Boolean, default=False)
    is_private_account: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Grant(Base):
    """One user's authorization of one client for a set of scopes."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("tiktok_accounts.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    # active | revoked | login_required
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Refresh tokens of this grant die at expires_at: rotation does not extend it.
    expires_at: Mapped[dt.datetime] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    client: Mapped[OAuthClient] = relationship(lazy="joined")
    account: Mapped[TikTokAccount] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_grants_account", "account_id"),
        Index("ix_grants_client", "client_pk"),
    )


class TikTokSession(Base):
    """A grant's TikTok cookie jar, AES-GCM encrypted under the grant's data key."""

    __tablename__ = "tiktok_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), unique=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Estimated from sid_guard without calling TikTok.
    session_expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SessionKeyWrap(Base):
    """The grant's data key, wrapped under a key derived from a server key and one app secret."""

    __tablename__ = "session_key_wraps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("tiktok_sessions.id", ondelete="CASCADE"))
    # code | access | refresh
    secret_kind: Mapped[str] = mapped_column(String(10))
    secret_digest: Mapped[str] = mapped_column(String(64), unique=True)
    server_key_id: Mapped[str] = mapped_column(String(16), index=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[dt.datetime] = mapped_column()


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    # The token family this code started (set on exchange), revoked when the code is re-used.
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    grant: Mapped[Grant] = relationship(lazy="joined")


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    refresh_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"), nullable=True, index=True
    )
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    grant: Mapped[Grant] = relationship(lazy="joined")


class PendingLogin(Base):
    """One QR sign-in waiting for the user (an authorization request or an /account sign-in).

    Nothing here opens anything: the browser's binding secret is kept only as a digest, and
    what TikTok would honour (warm-up cookies, QR token and URL, the confirmed cookie jar) only
    sealed under the server key and that binding (`login/sealed.py`). The authorization code is
    derived from the binding when the browser asks, so it is not kept at all.
    """

    __tablename__ = "pending_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # authorize | account (the connected-apps page)
    purpose: Mapped[str] = mapped_column(String(16), default="authorize")
    client_pk: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=True
    )
    # The validated authorization request's parameters (no secret among them).
    request_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    binding_digest: Mapped[str] = mapped_column(String(64))
    # consent | new | scanned | verify | confirmed | refused | error | done
    status: Mapped[str] = mapped_column(String(16), default="consent")
    qr_expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # What the page says beside the status ("TikTok is not answering..."); never a secret.
    message: Mapped[str | None] = mapped_column(String(200), nullable=True)
    next_poll_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    account_unique_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Where the browser goes when the sign-in ends, without the authorization code.
    result_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class RelayTicket(Base):
    """One WebSocket relay ticket waiting to be opened (webcast/tickets.py).

    Keyed by the ticket's digest; what the relay needs (the upstream push URL, the grant, the
    token digest, the session jar) is sealed under the server key and the ticket itself,
    which only the URL holds. A dump alone opens nothing, and the URL alone finds nothing
    once the row is gone. Taking a ticket deletes its row, so it opens once across every
    instance sharing the database.
    """

    __tablename__ = "relay_tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    client_pk: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=True
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("developers.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    client_pk: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebSession(Base):
    """A browser session on the dashboard (a developer) or on /account (a TikTok account).

    Only the SHA-256 digest of the cookie value is stored.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # developer | account
    kind: Mapped[str] = mapped_column(String(16))
    developer_id: Mapped[int | None] = mapped_column(
        ForeignKey("developers.id", ondelete="CASCADE"), nullable=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiktok_accounts.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


# Usage figures on the dashboard are read per client over a time window.
Index("ix_audit_events_client_at", AuditEvent.client_pk, AuditEvent.at)
