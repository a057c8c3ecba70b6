"""The authorization server's metadata document (RFC 8414 §2)."""

from __future__ import annotations

from typing import Any

from livegate.oauth import scopes
from livegate.oauth.endpoints.introspection import Introspection
from livegate.oauth.endpoints.revocation import Revocation
from livegate.oauth.grants.authorization_code import AUTH_METHODS


def metadata(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/tiktok/oauth/authorize",
        "token_endpoint": f"{issuer}/tiktok/oauth/token",
        "revocation_endpoint": f"{issuer}/tiktok/oauth/revoke",
        "introspection_endpoint": f"{issuer}/tiktok/oauth/introspect",
        "userinfo_endpoint": f"{issuer}/tiktok/oauth/userinfo",
        "scopes_supported": scopes.ALL_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": Revocation.CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": Introspection.CLIENT_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{issuer}/",
    }
