"""The simulator's room activity: chat, gifts (in streaks), likes, joins, follows and shares,
and the viewer count, made one at a time on demand (`emit`) or by a generator at a set rate
per room (`set_activity`). Every message goes into the room's log (rooms.WebcastWorld.publish),
so fetches and push sockets carry it like a comment. Off unless asked for."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from livegate.simulator import messages
from livegate.simulator.messages import GIFTS, GiftSpec
from livegate.simulator.rooms import LIVE, Event, Message, Room, WebcastWorld, now_ms
from livegate.simulator.state import Account, SimState

Kind = Literal["chat", "gift", "like", "member", "social", "room_user_seq"]
KINDS: tuple[Kind, ...] = ("chat", "gift", "like", "member", "social", "room_user_seq")
FANS = ("ava_live", "ben_watches", "chloe_fan", "dev_viewer", "emma_gifts", "finn_lurks")
LINES = (
    "hello from the simulator!",
    "this stream is great",
    "who else is watching?",
    "livegate works!",
    "greetings from the chat",
    "can you say hi to me?",
)
STREAK_MAX = 5  # a generated streak sends 1..STREAK_MAX gifts before it ends
# Not for secrets: which fan says what. An instance, so tests may seed it.
rng = random.Random()  # noqa: S311


@dataclass
class Streak:
    """A gift streak in progress: repeat_count grows to `target`, then one repeat_end."""

    sender: Account
    gift: GiftSpec
    group_id: int
    target: int
    count: int = 0


@dataclass(eq=False)
class Activity:
    rate_per_s: float = 0.0
    kinds: tuple[str, ...] = KINDS
    task: asyncio.Task[None] | None = None
    streak: Streak | None = None
    gifters: dict[str, tuple[Account, int]] = field(default_factory=dict)  # uid -> diamonds
    socials: dict[str, int] = field(default_factory=dict)  # follow|share -> how many so far

    def public(self) -> dict[str, Any]:
        return {"rate_per_s": self.rate_per_s, "kinds": list(self.kinds)}

    def stop(self) -> None:
        self.rate_per_s = 0.0
        if self.task is not None:
            self.task.cancel()
            self.task = None


def activity_of(room: Room) -> Activity:
    if not isinstance(room.activity, Activity):
        room.activity = Activity()
    act: Activity = room.activity
    return act


def fans(state: SimState) -> list[Account]:
    """The accounts generated messages come from, made once per simulator."""
    with state.lock:
        cached = state.extra.get("activity_fans")
        if cached is None:
            cached = [state.create_account(n, n.split("_")[0].title()) for n in FANS]
            state.extra["activity_fans"] = cached
        result: list[Account] = cached
        return result


def gift_by_name(name: str) -> GiftSpec | None:
    return next((g for g in GIFTS if g.name.lower() == name.lower() or str(g.id) == name), None)


# -- one message at a time --------------------------------------------------------------------


def _publish(
    world: WebcastWorld,
    room: Room,
    method: str,
    summary: dict[str, Any],
    build: Callable[[int, int], bytes],
) -> Event:
    msg_id, created = world.new_msg_id(), now_ms()
    event = Event(world.new_seq(), msg_id, method, created, build(msg_id, created), summary)
    world.publish(room, event)
    return event


def _gift(world: WebcastWorld, room: Room, sender: Account, streak: Streak, *, end: bool) -> Event:
    gift, count = streak.gift, streak.count
    if not end or not gift.streakable:  # each growing step of a streak is one more gift
        room.diamonds += gift.diamonds
        act = activity_of(room)
        _, before = act.gifters.get(sender.uid, (sender, 0))
        act.gifters[sender.uid] = (sender, before + gift.diamonds)
    summary = {
        "unique_id": sender.unique_id,
        "gift_id": gift.id,
        "gift": gift.name,
        "repeat_count": count,
        "repeat_end": end,
        "group_id": str(streak.group_id),
    }
    return _publish(
        world,
        room,
        "WebcastGiftMessage",
        summary,
        lambda m, t: messages.gift_message(
            room, m, t, sender, gift, group_id=streak.group_id, repeat_count=count, repeat_end=end
        ),
    )


def send_gifts(
    world: WebcastWorld, room: Room, sender: Account, gift: GiftSpec, repeat_count: int
) -> list[Event]:
    """A whole streak: repeat_count 1..n with repeat_end 0, then n with repeat_end 1. A gift
    that does not streak is one message with repeat_end 1, as TikTok sends it."""
    streak = Streak(sender, gift, world.new_msg_id(), repeat_count)
    sent: list[Event] = []
    if not gift.streakable:
        streak.count = 1
        return [_gift(world, room, sender, streak, end=True)]
    for streak.count in range(1, repeat_count + 1):
        sent.append(_gift(world, room, sender, streak, end=False))
    sent.append(_gift(world, room, sender, streak, end=True))
    return sent


def like(world: WebcastWorld, room: Room, sender: Account, count: int) -> Event:
    room.likes += count
    total = room.likes
    summary = {"unique_id": sender.unique_id, "count": count, "total": total}
    return _publish(
        world,
        room,
        "WebcastLikeMessage",
        summary,
        lambda m, t: messages.like_message(room, m, t, sender, count, total),
    )


def member(world: WebcastWorld, room: Room, sender: Account) -> Event:
    room.viewers += 1
    viewers = room.viewers
    summary = {"unique_id": sender.unique_id, "action": "join", "member_count": viewers}
    return _publish(
        world,
        room,
        "WebcastMemberMessage",
        summary,
        lambda m, t: messages.member_message(room, m, t, sender, viewers),
    )


def social(world: WebcastWorld, room: Room, sender: Account, action: str) -> Event:
    socials = activity_of(room).socials
    socials[action] = count = socials.get(action, 0) + 1
    summary = {"unique_id": sender.unique_id, "action": action, "count": count}
    return _publish(
        world,
        room,
        "WebcastSocialMessage",
        summary,
        lambda m, t: messages.social_message(room, m, t, sender, action, count),
    )


def room_user_seq(world: WebcastWorld, room: Room) -> Event:
    total = room.viewers + len(room.connections)
    gifters = sorted(activity_of(room).gifters.values(), key=lambda g: -g[1])[:3]
    summary = {"total": total, "top": [acc.unique_id for acc, _ in gifters]}
    return _publish(
        world,
        room,
        "WebcastRoomUserSeqMessage",
        summary,
        lambda m, t: messages.room_user_seq_message(room, m, t, total, gifters),
    )


# -- the generator ----------------------------------------------------------------------------


def _gift_step(world: WebcastWorld, room: Room, act: Activity, senders: list[Account]) -> Event:
    """The next message of the room's streak, starting one when none is running."""
    streak = act.streak
    if streak is None:
        gift = rng.choice(GIFTS)
        streak = Streak(rng.choice(senders), gift, world.new_msg_id(), rng.randint(1, STREAK_MAX))
        if not gift.streakable:
            return send_gifts(world, room, streak.sender, gift, 1)[0]
        act.streak = streak
    if streak.count < streak.target:
        streak.count += 1
        return _gift(world, room, streak.sender, streak, end=False)
    act.streak = None
    return _gift(world, room, streak.sender, streak, end=True)


def generate(state: SimState, world: WebcastWorld, room: Room, kind: str) -> Message:
    """One generated message of `kind`, from a random fan."""
    senders = fans(state)
    sender = rng.choice(senders)
    if kind == "chat":
        return world.add_comment(room, sender, rng.choice(LINES))
    if kind == "gift":
        return _gift_step(world, room, activity_of(room), senders)
    if kind == "like":
        return like(world, room, sender, rng.randint(1, 15))
    if kind == "member":
        return member(world, room, sender)
    if kind == "social":
        return social(world, room, sender, rng.choice(("follow", "share")))
    return room_user_seq(world, room)


async def _run(state: SimState, world: WebcastWorld, room: Room, act: Activity) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while room.status == LIVE and act.rate_per_s > 0:
        next_at += 1 / act.rate_per_s
        # A loop that fell behind (a busy machine) does not make up with a burst.
        next_at = max(next_at, loop.time() - 1.0)
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        if room.status == LIVE:
            generate(state, world, room, rng.choice(act.kinds))


def set_activity(
    state: SimState, world: WebcastWorld, room: Room, rate_per_s: float, kinds: Sequence[str]
) -> Activity:
    """Start, change or (rate 0) stop the room's generator; must run on the server's loop."""
    act = activity_of(room)
    act.stop()
    act.rate_per_s = rate_per_s
    act.kinds = tuple(kinds) or KINDS
    if rate_per_s > 0 and room.status == LIVE:
        act.task = asyncio.get_running_loop().create_task(_run(state, world, room, act))
    return act


async def stop_all(world: WebcastWorld) -> None:
    """Stop every room's generator (the simulator is shutting down)."""
    tasks = []
    for room in world.rooms.values():
        if isinstance(room.activity, Activity) and room.activity.task is not None:
            tasks.append(room.activity.task)
            room.activity.stop()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
