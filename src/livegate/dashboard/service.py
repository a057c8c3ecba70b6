"""Dashboard logic, no HTTP: developer accounts and sessions, clients, API keys, usage.

Every function takes the database `Session` first. Refusals are `LivegateError`s: a form value
refused is a `DashboardError` (400, the form is shown again with its message); somebody else's
client or key is 403, one that does not exist 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from livegate import apikeys, audit
from livegate.dashboard import sessions, usage
from livegate.dashboard.passwords import MIN_LENGTH, hash_password, needs_rehash, verify_password
from livegate.dashboard.schemas import ClientForm
from livegate.dashboard.strings import STRINGS
from livegate.db.models import ApiKey, Developer, OAuthClient, WebSession
from livegate.errors import LivegateError
from livegate.oauth import clients, scopes

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
THEMES = ("auto", "light", "dark")


class DashboardError(LivegateError):
    """A form value was refused; the message (shown with the form) says what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "invalid_request", message)


def _not_found(what: str) -> LivegateError:
    return LivegateError(404, "not_found", STRINGS["not_found"].format(what=what))


def _forbidden(what: str) -> LivegateError:
    return LivegateError(403, "forbidden", STRINGS["forbidden"].format(what=what))


# -- developers ----------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise DashboardError(STRINGS["bad_email"])
    return email


def create_developer(db: Session, email: str, password: str, is_admin: bool = False) -> Developer:
    email = normalize_email(email)
    if len(password) < MIN_LENGTH:
        raise DashboardError(STRINGS["short_password"].format(n=MIN_LENGTH))
    if db.scalar(select(Developer.id).where(Developer.email == email)) is not None:
        raise DashboardError(STRINGS["email_taken"])
    row = Developer(email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.add(row)
    db.flush()
    audit.record(db, "developer.created", developer_id=row.id, admin=is_admin)
    return row


def authenticate(db: Session, email: str, password: str) -> Developer | None:
    try:
        email = normalize_email(email)
    except DashboardError:
        email = ""
    row = db.scalar(select(Developer).where(Developer.email == email)) if email else None
    if not verify_password(row.password_hash if row else None, password) or row is None:
        return None
    if needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    return row


def count_developers(db: Session) -> int:
    return int(db.scalar(select(func.count(Developer.id))) or 0)


def signed_in(db: Session, token: str | None, ttl: int) -> tuple[WebSession, Developer] | None:
    """The live session behind the dashboard cookie, and its developer."""
    row = sessions.find(db, token, ("developer",), ttl)
    if row is None or row.developer_id is None:
        return None
    dev = db.get(Developer, row.developer_id)
    return None if dev is None else (row, dev)


def start_session(db: Session, old_token: str | None, developer_id: int, ttl: int) -> str:
    """A new session for a developer who just signed in (whatever session came before ends):
    the new cookie value."""
    sessions.end(db, old_token)
    token, _ = sessions.create(db, "developer", ttl, developer_id=developer_id)
    return token


# -- clients -------------------------------------------------------------------------------


def visible_clients(db: Session, dev: Developer) -> list[OAuthClient]:
    return clients.list_clients(db, owner_id=None if dev.is_admin else dev.id)


@dataclass
class ClientView:
    row: OAuthClient
    owner_email: str | None


def client_views(db: Session, dev: Developer) -> list[ClientView]:
    """The clients this developer sees; an admin sees every client, with its owner."""
    rows = visible_clients(db, dev)
    owners: dict[int, str] = {}
    if dev.is_admin:
        owners = dict(db.execute(select(Developer.id, Developer.email)).tuples().all())
    return [ClientView(r, owners.get(r.owner_id) if r.owner_id else None) for r in rows]


_Owned = TypeVar("_Owned", OAuthClient, ApiKey)


def _owned(row: _Owned | None, dev: Developer, what: str) -> _Owned:
    """`row`, if this developer may see and change it (its owner, or an admin)."""
    if row is None:
        raise _not_found(what)
    if not dev.is_admin and row.owner_id != dev.id:
        raise _forbidden(what)
    return row


def owned_client(db: Session, dev: Developer, client_id: str) -> OAuthClient:
    return _owned(clients.get_client(db, client_id), dev, "client")


def check_web_url(url: str, what: str) -> str | None:
    """An optional https URL (http only on loopback), for a logo or a homepage."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if (
        len(url) > 2000
        or not parts.netloc
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        raise DashboardError(f"{what} must be an https URL")
    return url


def _validate(form: ClientForm) -> tuple[list[str], list[str], str | None, str | None]:
    if not form.name.strip():
        raise DashboardError("The name is required.")
    if len(form.name) > 200 or len(form.description) > 2000:
        raise DashboardError("The name or description is too long.")
    uris = form.uri_list()
    if not uris:
        raise DashboardError("Add at least one redirect URI.")
    try:
        uris = [clients.check_redirect_uri(u) for u in uris]
    except clients.ClientError as exc:
        raise DashboardError(str(exc)) from exc
    try:
        allowed = scopes.parse(" ".join(form.scope))
    except scopes.UnknownScope as exc:
        raise DashboardError(f"Unknown scope: {exc.args[0]}") from exc
    if not allowed:
        raise DashboardError("Choose at least one scope.")
    if form.theme not in THEMES:
        raise DashboardError("The theme must be auto, light or dark.")
    logo = check_web_url(form.logo_url, "The logo URL")
    homepage = check_web_url(form.homepage_url, "The homepage")
    return uris, allowed, logo, homepage


def create_client(db: Session, dev: Developer, form: ClientForm) -> clients.NewClient:
    uris, allowed, logo, homepage = _validate(form)
    try:
        return clients.create_client(
            db,
            name=form.name,
            redirect_uris=uris,
            scope=" ".join(allowed),
            public=form.public,
            description=form.description.strip(),
            logo_url=logo,
            homepage_url=homepage,
            theme=form.theme,
            owner_id=dev.id,
        )
    except clients.ClientError as exc:
        raise DashboardError(str(exc)) from exc


def update_client(db: Session, row: OAuthClient, form: ClientForm) -> None:
    """Everything but the client type (which would change how it authenticates)."""
    uris, allowed, logo, homepage = _validate(form)
    row.name = form.name.strip()
    row.description = form.description.strip()
    row.logo_url = logo
    row.homepage_url = homepage
    row.redirect_uris = uris
    row.scopes = allowed
    row.theme = form.theme
    audit.record(db, "client.updated", client_pk=row.id)


def save_client(db: Session, dev: Developer, client_id: str, form: ClientForm) -> OAuthClient:
    row = owned_client(db, dev, client_id)
    update_client(db, row, form)
    return row


def rotate_client_secret(db: Session, dev: Developer, client_id: str, grace: int) -> str:
    """A new secret; the current one keeps working for `grace` seconds."""
    row = owned_client(db, dev, client_id)
    try:
        return clients.rotate_secret(db, row, grace)
    except clients.ClientError as exc:
        raise DashboardError(str(exc)) from exc


def delete_client(db: Session, dev: Developer, client_id: str) -> None:
    clients.delete_client(db, owned_client(db, dev, client_id))


def client_usage(
    db: Session, dev: Developer, client_id: str, window: str
) -> tuple[OAuthClient, usage.Usage]:
    row = owned_client(db, dev, client_id)
    return row, usage.compute(db, row.id, window)


# -- API keys ------------------------------------------------------------------------------


def visible_api_keys(db: Session, dev: Developer) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.id.desc())
    if not dev.is_admin:
        q = q.where(ApiKey.owner_id == dev.id)
    return list(db.scalars(q))


def create_api_key(
    db: Session, dev: Developer, name: str, client_id: str | None
) -> tuple[str, ApiKey]:
    name = name.strip()
    if len(name) > 200:
        raise DashboardError("The name is too long.")
    client_pk = owned_client(db, dev, client_id).id if client_id else None
    return apikeys.create_api_key(db, name=name, client_pk=client_pk, owner_id=dev.id)


def api_keys_page(db: Session, dev: Developer) -> tuple[list[ApiKey], list[OAuthClient]]:
    """The keys this developer sees, and the clients a new key may belong to."""
    return visible_api_keys(db, dev), visible_clients(db, dev)


def revoke_api_key(db: Session, dev: Developer, key_id: int) -> None:
    row = owned_api_key(db, dev, key_id)
    if row.revoked_at is None:
        apikeys.revoke_api_key(db, row)


def owned_api_key(db: Session, dev: Developer, key_id: int) -> ApiKey:
    return _owned(db.get(ApiKey, key_id), dev, "API key")
