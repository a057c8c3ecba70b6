"""Client authentication at the token endpoints (RFC 6749 §2.3): Authlib checks the
credentials; this module reads what Authlib cannot, and says why a client was refused."""

from __future__ import annotations

import base64

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy.orm import Session

from livegate.oauth import clients
from livegate.oauth.requests import LivegateRequest, quoted

UNREADABLE_BASIC = "The Basic credentials are not base64-encoded UTF-8 text."


def basic_credentials_readable(header: str | None) -> bool:
    """False for an Authorization header that Authlib would fail reading as Basic credentials:
    not base64, not UTF-8 once decoded, or no scheme and value around its space."""
    if not header or " " not in header:
        return True  # Authlib reads no Basic credentials from it
    parts = header.split(None, 1)
    if len(parts) != 2:
        return False
    scheme, value = parts
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(value).decode("utf-8")
    except ValueError:  # bad base64, non-ASCII characters, or bytes that are not UTF-8
        return False
    return True


def presented_client_id(headers: dict[str, str], params: list[tuple[str, str]]) -> str:
    """The client_id a request names (Basic first, as Authlib tries it), or ""."""
    try:
        basic_id, _ = extract_basic_authorization(headers)
    except ValueError:  # not UTF-8: refused as invalid_client later
        basic_id = None
    return basic_id or next((v for k, v in params if k == "client_id"), "")


def why_refused(db: Session, request: LivegateRequest, methods: list[str]) -> str:
    """What the client must fix, once Authlib has refused its credentials.

    Naming the client's type and whether it exists tells nothing secret: client ids are
    public (`/tiktok/oauth/clients/{client_id}`), and failures are rate-limited per address.
    """
    basic_id, basic_secret = extract_basic_authorization(request.headers)
    client_id = basic_id or request.form.get("client_id")
    secret = basic_secret or request.form.get("client_secret")
    if not client_id:
        how = "HTTP Basic, or client_id and client_secret in the body"
        if "none" in methods:
            how += "; a public client sends its client_id alone"
        return f"The request does not authenticate a client: use {how}."
    name = "client " + quoted(client_id, "with that client_id")
    row = clients.get_client(db, client_id)
    if row is None:
        return f"No {name} is registered here."
    if row.is_public and "none" not in methods:
        return f"The {name} is public; this endpoint takes confidential clients only."
    if row.is_public:
        return f"The {name} is public and has no secret: send its client_id alone."
    if not secret:
        return (
            f"The {name} is confidential: send its client_secret too "
            "(HTTP Basic, or client_secret in the body)."
        )
    return (
        f"The client_secret is wrong for the {name} "
        "(a rotated secret stops working when its grace period ends)."
    )
