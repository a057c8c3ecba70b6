"""The signed-in account behind a TikTok session, read from TikTok's answers.

passport's `account/info` identifies the account; the public `api/user/detail` adds what it
leaves out (secUid, region, an open room, privacy) when it answers. Nothing here sends a
request: PassportClient.fetch_profile makes the two calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from livegate.tiktok.answers import as_dict, as_int, json_object
from livegate.tiktok.errors import SessionExpired, UpstreamError
from livegate.tiktok.http import Answer

log = structlog.get_logger(__name__)

PASSPORT_AID = "1459"  # TikTok's web passport app id
WEB_AID = "1988"
LANGUAGE = "en"


@dataclass
class TikTokProfile:
    uid: str
    sec_uid: str
    unique_id: str
    nickname: str
    region: str
    avatar_url: str
    room_id: str = ""
    has_live_permission: bool = False
    is_private_account: bool = False


ACCOUNT_INFO_PARAMS = {
    "aid": PASSPORT_AID,
    "app_name": "tiktok_web",
    "account_sdk_source": "web",
    "device_platform": "web_pc",
    "language": LANGUAGE,
}


def user_detail_params(unique_id: str, jar: dict[str, str]) -> dict[str, str]:
    params = {
        "uniqueId": unique_id,
        "aid": WEB_AID,
        "app_name": "tiktok_web",
        "device_platform": "web_pc",
        "language": LANGUAGE,
        "secUid": "",
    }
    if jar.get("msToken"):
        params["msToken"] = jar["msToken"]
    return params


def passport_data(response: Answer, what: str) -> tuple[Any, dict[str, Any], int | None]:
    """A passport answer's `message`, its `data` and the `error_code` in it; UpstreamError
    when there is no `data`. What a message or code means is the caller's to say."""
    body = json_object(response, what)
    data = body.get("data")
    if not isinstance(data, dict):
        raise UpstreamError(f"{what}: no data")
    return body.get("message"), data, as_int(data.get("error_code"))


def profile_from_account_info(response: Answer, jar: dict[str, str]) -> TikTokProfile:
    """The account behind the session, or SessionExpired when TikTok says it is not signed in."""
    if response.status in (401, 419):
        raise SessionExpired("TikTok session is not signed in")
    if response.status >= 400:
        raise UpstreamError(f"account info answered HTTP {response.status}")
    message, data, code = passport_data(response, "account info")
    if message != "success" or (code is not None and code != 0):
        raise SessionExpired("TikTok session is not signed in")
    uid = str(data.get("user_id_str") or data.get("user_id") or "")
    if not uid or uid == "0":
        raise UpstreamError("account info: no user id")
    return TikTokProfile(
        uid=uid,
        sec_uid=str(data.get("sec_user_id") or ""),
        unique_id=str(data.get("username") or data.get("unique_id") or ""),
        nickname=str(data.get("screen_name") or data.get("name") or ""),
        region=str(jar.get("store-country-code") or "").upper(),
        avatar_url=str(data.get("avatar_url") or ""),
    )


def apply_user_detail(profile: TikTokProfile, response: Answer) -> None:
    """Fill in what user/detail says of the same account; UpstreamError when it says nothing."""
    if response.status >= 400:
        raise UpstreamError(f"user detail answered HTTP {response.status}")
    body = json_object(response, "user detail")
    status = as_int(body.get("statusCode", body.get("status_code")))
    user = as_dict(body.get("userInfo")).get("user")
    if status not in (None, 0) or not isinstance(user, dict):
        log.info("profile_detail_unavailable", status_code=status)
        return
    if str(user.get("id") or "") != profile.uid:
        # A renamed handle can now belong to someone else; never mix two accounts.
        log.info("profile_detail_mismatch")
        return
    profile.sec_uid = str(user.get("secUid") or profile.sec_uid)
    profile.unique_id = str(user.get("uniqueId") or profile.unique_id)
    profile.nickname = str(user.get("nickname") or profile.nickname)
    profile.avatar_url = str(
        user.get("avatarThumb")
        or user.get("avatarMedium")
        or user.get("avatarLarger")
        or profile.avatar_url
    )
    profile.region = str(user.get("region") or profile.region).upper()
    profile.is_private_account = bool(user.get("privateAccount") or user.get("secret"))
    room_id = str(user.get("roomId") or "")
    profile.room_id = "" if room_id == "0" else room_id
    # TikTok's web user object has no "may go live" flag; an open room proves it.
    profile.has_live_permission = bool(profile.room_id)
