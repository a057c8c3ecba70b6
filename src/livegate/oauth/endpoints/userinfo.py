"""The signed-in TikTok user, for a token with the `user:info` scope."""

from __future__ import annotations

from typing import Any

from livegate.db.models import TikTokAccount

SCOPE = "user:info"


def userinfo(account: TikTokAccount) -> dict[str, Any]:
    return {
        "sub": account.uid,
        "uid": account.uid,
        "secUid": account.sec_uid,
        "nickName": account.nickname,
        "uniqueId": account.unique_id,
        "region": account.region,
        "avatarUrl": account.avatar_url,
        "roomId": account.room_id or None,
        "hasLivePermission": account.has_live_permission,
        "isPrivateAccount": account.is_private_account,
    }
