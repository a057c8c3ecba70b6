"""The grant types livegate issues tokens for, one module each (RFC 6749 §4.1 and §6)."""

from livegate.oauth.grants.authorization_code import AuthorizationCodeGrant, S256Only
from livegate.oauth.grants.refresh_token import RefreshTokenGrant

__all__ = ["AuthorizationCodeGrant", "RefreshTokenGrant", "S256Only"]
