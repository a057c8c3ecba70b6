"""livegate: an OAuth 2.0 authorization server and API gateway for TikTok LIVE."""

__version__ = "0.1.0"
