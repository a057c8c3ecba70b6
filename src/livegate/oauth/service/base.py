"""What every OAuth service does per call: one transaction, one Authlib server bound to its
session, and the request as Authlib sees it. No HTTP here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy.orm import Session

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.errors import LivegateError
from livegate.oauth.requests import LivegateRequest, unprintable_error
from livegate.oauth.server import LivegateServer
from livegate.vault import Vault

T = TypeVar("T")

# A call of the token, revocation, introspection or validate-refresh endpoint: the answer's
# body, or a refusal raised.
EndpointCall = Callable[[LivegateServer, LivegateRequest], dict[str, Any]]


def _unprintable(exc: ValueError) -> bool:
    # Authlib echoes some request values into error descriptions and refuses to build one
    # with characters RFC 6749 §5.2 forbids; that is still just a bad request.
    return "forbidden characters" in str(exc)


class ServiceBase:
    def __init__(self, settings: Settings, database: Database, vault: Vault) -> None:
        self.settings = settings
        self.database = database
        self.vault = vault

    def server(self, db: Session) -> LivegateServer:
        return LivegateServer(self.settings, self.vault, db)

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """`fn` in one transaction. A refusal commits what it changed before it is raised
        (as a LivegateError): a replayed code or refresh token revokes its family, and that
        revocation must stand."""

        def run(db: Session) -> tuple[T | None, LivegateError | None]:
            try:
                return fn(db), None
            except OAuth2Error as exc:
                return None, LivegateError.from_oauth(exc)
            except LivegateError as exc:
                return None, exc
            except ValueError as exc:
                if not _unprintable(exc):
                    raise
                return None, unprintable_error()

        result, refusal = self.database.run(run)
        if refusal is not None:
            raise refusal
        return result  # type: ignore[return-value]  # T, as fn returned it

    def public_uri(self, target: str) -> str:
        """The URI Authlib sees: the issuer, plus the request's path and query.

        Never the Host header or the scheme of the last hop: behind a TLS-terminating proxy
        those say http://<internal name>, and Authlib refuses any http URI that is not
        loopback (InsecureTransportError). The issuer is what clients were told to use.
        """
        parts = urlsplit(target)
        return self.settings.issuer + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self, method: str, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> LivegateRequest:
        """The request for Authlib; refused outright when no endpoint could read it."""
        try:
            request = LivegateRequest(method, self.public_uri(target), headers, params)
        except OAuth2Error as exc:  # insecure_transport: LIVEGATE_PUBLIC_URL is plain http
            raise LivegateError.from_oauth(exc) from None
        request.check_parameters()
        return request

    def endpoint(
        self,
        target: str,
        headers: dict[str, str],
        params: list[tuple[str, str]],
        call: EndpointCall,
    ) -> dict[str, Any]:
        request = self.request("POST", target, headers, params)
        return self.transaction(lambda db: call(self.server(db), request))
