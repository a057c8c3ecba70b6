"""OAuth client registrations: create, list, rotate the secret, delete."""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate import audit
from livegate.db.models import Grant, OAuthClient, utcnow
from livegate.oauth import scopes, tokens
from livegate.secrets import CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, digest, new_secret


class ClientError(ValueError):
    pass


@dataclass
class NewClient:
    row: OAuthClient
    client_secret: str | None


def check_redirect_uri(uri: str) -> str:
    """https, or http on a loopback host (RFC 8252 §7.3); no fragment (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ClientError(f"redirect URI must not have a fragment: {uri}")
    if parts.scheme == "https" and parts.netloc:
        return uri
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return uri
    raise ClientError(f"redirect URI must be https (or http on localhost): {uri}")


def create_client(
    db: Session,
    *,
    name: str,
    redirect_uris: list[str],
    scope: str,
    public: bool = False,
    description: str = "",
    logo_url: str | None = None,
    homepage_url: str | None = None,
    theme: str = "auto",
    owner_id: int | None = None,
) -> NewClient:
    if not name.strip():
        raise ClientError("name is required")
    if not redirect_uris:
        raise ClientError("at least one redirect URI is required")
    uris = [check_redirect_uri(u) for u in redirect_uris]
    try:
        allowed = scopes.parse(scope)
    except scopes.UnknownScope as exc:
        raise ClientError(f"unknown scope: {exc.args[0]}") from exc
    if not allowed:
        raise ClientError("at least one scope is required")
    if theme not in ("auto", "dark", "light"):
        raise ClientError("theme must be auto, dark or light")
    secret = None if public else new_secret(CLIENT_SECRET_PREFIX)
    row = OAuthClient(
        client_id=CLIENT_ID_PREFIX + pysecrets.token_urlsafe(16),
        name=name.strip(),
        description=description,
        logo_url=logo_url,
        homepage_url=homepage_url,
        secret_digest=digest(secret) if secret else None,
        redirect_uris=uris,
        scopes=allowed,
        is_public=public,
        theme=theme,
        owner_id=owner_id,
    )
    db.add(row)
    db.flush()
    audit.record(db, "client.created", client_pk=row.id)
    return NewClient(row, secret)


def get_client(db: Session, client_id: str) -> OAuthClient | None:
    if "\x00" in client_id:  # e.g. from a Basic header; PostgreSQL text refuses it
        return None
    return db.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def list_clients(db: Session, owner_id: int | None = None) -> list[OAuthClient]:
    q = select(OAuthClient).order_by(OAuthClient.id)
    if owner_id is not None:
        q = q.where(OAuthClient.owner_id == owner_id)
    return list(db.scalars(q))


def rotate_secret(db: Session, row: OAuthClient, grace_seconds: int) -> str:
    if row.is_public:
        raise ClientError("public clients have no secret")
    secret = new_secret(CLIENT_SECRET_PREFIX)
    row.previous_secret_digest = row.secret_digest
    row.previous_secret_expires_at = utcnow() + dt.timedelta(seconds=grace_seconds)
    row.secret_digest = digest(secret)
    audit.record(db, "client.secret_rotated", client_pk=row.id)
    return secret


def delete_client(db: Session, row: OAuthClient) -> None:
    """Every grant and token of the client dies with it."""
    for grant in db.scalars(select(Grant).where(Grant.client_pk == row.id)):
        tokens.end_grant(db, grant)
    audit.record(db, "client.deleted", client_pk=row.id, client_id=row.client_id)
    db.delete(row)


def public_info(row: OAuthClient) -> dict[str, object]:
    return {
        "client_id": row.client_id,
        "name": row.name,
        "description": row.description,
        "redirect_uris": list(row.redirect_uris),
        "supported_scopes": list(row.scopes),
        "theme": row.theme,
        "mode": row.mode,
        "logo": row.logo_url,
        "homepage": row.homepage_url,
        "client_type": "public" if row.is_public else "confidential",
    }
