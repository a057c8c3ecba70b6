"""The scope catalogue: every scope the Euler SDKs know, with words for the consent page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScopeInfo:
    name: str
    title: str
    description: str


CATALOGUE: dict[str, ScopeInfo] = {
    s.name: s
    for s in [
        ScopeInfo(
            "webcast:fetch",
            "Read LIVE events",
            "Connect to LIVE rooms and receive their chat, gifts, likes and other events.",
        ),
        ScopeInfo(
            "webcast:bulk_live_check",
            "Check who is live",
            "See whether TikTok accounts are currently broadcasting.",
        ),
        ScopeInfo("webcast:rankings", "Read LIVE rankings", "Read TikTok LIVE leaderboards."),
        ScopeInfo("webcast:chat", "Send chat messages", "Post chat messages in LIVE rooms as you."),
        ScopeInfo("webcast:comments", "Read comments", "Read comments in LIVE rooms you can see."),
        ScopeInfo("webcast:ban", "Ban viewers", "Ban viewers from your LIVE rooms."),
        ScopeInfo("webcast:mute", "Mute viewers", "Mute viewers in your LIVE rooms."),
        ScopeInfo(
            "webcast:moderators",
            "Manage moderators",
            "See and change the moderators of your LIVE rooms.",
        ),
        ScopeInfo(
            "webcast:live_analytics",
            "Read LIVE analytics",
            "Read statistics about your LIVE sessions.",
        ),
        ScopeInfo("webcast:user_earnings", "Read your earnings", "Read your LIVE gift earnings."),
        ScopeInfo(
            "webcast:sign_url",
            "Sign TikTok requests",
            "Have TikTok web requests signed with your session.",
        ),
        ScopeInfo(
            "webcast:sensitive_words",
            "Manage blocked words",
            "See and change the words filtered from your LIVE chat.",
        ),
        ScopeInfo(
            "user:consents",
            "See your connected apps",
            "See which apps you have connected to your TikTok account.",
        ),
        ScopeInfo(
            "user:info",
            "Read your profile",
            "Read your TikTok user ID, username, nickname, region and avatar.",
        ),
    ]
}

# Names from the seed document and the public docs, mapped to the SDKs' names.
ALIASES: dict[str, str] = {
    "webcast:live_check": "webcast:bulk_live_check",
    "webcast:earnings": "webcast:user_earnings",
}

ALL_SCOPES: list[str] = list(CATALOGUE)


class UnknownScope(ValueError):
    pass


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in CATALOGUE:
        raise UnknownScope(name)
    return name


def parse(scope: str | None) -> list[str]:
    """Space-separated scopes, aliases resolved, order kept, duplicates dropped."""
    out: list[str] = []
    for part in (scope or "").split():
        name = canonical(part)
        if name not in out:
            out.append(name)
    return out


def describe(names: list[str]) -> list[ScopeInfo]:
    return [CATALOGUE[n] for n in names if n in CATALOGUE]
