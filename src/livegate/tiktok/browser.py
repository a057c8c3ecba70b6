"""The browser TikTok's web client says it is: the fingerprint parameters of every webcast
and www request, derived from the user agent that is sent with them."""

from __future__ import annotations

AID = "1988"  # TikTok's web app id


def browser_params(user_agent: str) -> dict[str, str]:
    """The fingerprint parameters TikTok's web client derives from its user agent.

    TikTok's web app sends navigator.appCodeName/appVersion, i.e. the user agent split at its
    first slash; they must agree with the User-Agent header or the request looks forged.
    """
    name, _, version = user_agent.partition("/")
    if "Macintosh" in user_agent:
        platform, os_name = "MacIntel", "mac"
    elif "Linux" in user_agent and "Android" not in user_agent:
        platform, os_name = "Linux x86_64", "linux"
    else:
        platform, os_name = "Win32", "windows"
    return {
        "aid": AID,
        "app_language": "en",
        "app_name": "tiktok_web",
        "browser_language": "en-US",
        "browser_name": name,
        "browser_online": "true",
        "browser_platform": platform,
        "browser_version": version,
        "channel": "tiktok_web",
        "cookie_enabled": "true",
        "data_collection_enabled": "true",
        "device_platform": "web_pc",
        "focus_state": "true",
        "from_page": "",
        "history_len": "4",
        "is_fullscreen": "false",
        "is_page_visible": "true",
        "os": os_name,
        "priority_region": "US",
        "region": "US",
        "screen_height": "1080",
        "screen_width": "1920",
        "tz_name": "America/New_York",
        "webcast_language": "en",
    }
