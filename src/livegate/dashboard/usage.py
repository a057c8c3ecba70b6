"""Usage figures of one client, read from audit_events; the chart drawn server-side as SVG."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from livegate.db.models import AuditEvent, Grant, utcnow

WINDOWS: dict[str, tuple[dt.timedelta, dt.timedelta]] = {
    # window: (length, bucket)
    "24h": (dt.timedelta(hours=24), dt.timedelta(hours=1)),
    "30d": (dt.timedelta(days=30), dt.timedelta(days=1)),
}

# Counters, in CSV column order: (key, audit kind, predicate on the detail).
COUNTERS = (
    "authorizations_started",
    "authorizations_completed",
    "authorizations_refused",
    "token_refreshes",
    "webcast_calls",
    "rate_limited",
)


@dataclass
class Bucket:
    start: dt.datetime
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class Usage:
    window: str
    start: dt.datetime
    end: dt.datetime
    totals: Counter[str]
    active_grants: int
    buckets: list[Bucket]
    # (route, status) -> calls
    routes: list[tuple[str, str, int]]


def _classify(kind: str, detail: dict[str, object]) -> list[str]:
    if kind == "authorization.started":
        return ["authorizations_started"]
    if kind == "authorization.completed":
        return ["authorizations_completed"]
    if kind == "authorization.refused":
        return ["authorizations_refused"]
    if kind == "token.issued" and detail.get("grant_type") == "refresh_token":
        return ["token_refreshes"]
    if kind == "webcast.call":
        out = ["webcast_calls"]
        if str(detail.get("status")) == "429" or detail.get("rate_limited"):
            out.append("rate_limited")
        return out
    if kind == "webcast.rate_limited":
        return ["rate_limited"]
    return []


def _count(detail: dict[str, object]) -> int:
    count = detail.get("count", 1)
    return count if isinstance(count, int) and count > 0 else 1


KINDS = (
    "authorization.started",
    "authorization.completed",
    "authorization.refused",
    "token.issued",
    "webcast.call",
    "webcast.rate_limited",
)


def compute(db: Session, client_pk: int, window: str, now: dt.datetime | None = None) -> Usage:
    length, step = WINDOWS[window]
    now = now or utcnow()
    # Buckets aligned to the hour (or day), the last one holding "now".
    if step >= dt.timedelta(days=1):
        last = now.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        last = now.replace(minute=0, second=0, microsecond=0)
    n = int(length / step)
    first = last - step * (n - 1)
    buckets = [Bucket(first + step * i) for i in range(n)]
    totals: Counter[str] = Counter()
    routes: Counter[tuple[str, str]] = Counter()
    rows = db.execute(
        select(AuditEvent.at, AuditEvent.kind, AuditEvent.detail).where(
            AuditEvent.client_pk == client_pk,
            AuditEvent.at >= first,
            AuditEvent.kind.in_(KINDS),
        )
    )
    for at, kind, detail in rows:
        detail = detail or {}
        keys = _classify(kind, detail)
        if not keys:
            continue
        index = min(n - 1, max(0, int((at - first) / step)))
        # The webcast API writes its calls counted per batch (api/recorder.py).
        calls = _count(detail) if kind == "webcast.call" else 1
        for key in keys:
            totals[key] += calls
            buckets[index].counts[key] += calls
        if kind == "webcast.call":
            routes[(str(detail.get("route", "?")), str(detail.get("status", "?")))] += calls
    active = db.scalar(
        select(func.count(Grant.id)).where(
            Grant.client_pk == client_pk, Grant.status == "active", Grant.expires_at > now
        )
    )
    return Usage(
        window=window,
        start=first,
        end=now,
        totals=totals,
        active_grants=int(active or 0),
        buckets=buckets,
        routes=sorted(((r, s, c) for (r, s), c in routes.items()), key=lambda x: (-x[2], x[0])),
    )


def to_csv(usage: Usage) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["bucket_start", *COUNTERS])
    for b in usage.buckets:
        w.writerow([b.start.isoformat(), *(b.counts[c] for c in COUNTERS)])
    w.writerow([])
    w.writerow(["route", "status", "calls"])
    for route, status, count in usage.routes:
        w.writerow([route, status, count])
    return out.getvalue()


# -- the chart -----------------------------------------------------------------------------

SERIES = (
    # key, colour (passes WCAG contrast on white and on the dark card)
    ("webcast_calls", "#2563eb"),
    ("authorizations_completed", "#d6204a"),
)


def svg_chart(usage: Usage, title: str, labels: dict[str, str]) -> str:
    """Grouped bars per bucket; plain SVG attributes (no inline style: the CSP forbids it)."""
    width, height = 720, 240
    left, right, top, bottom = 44, 10, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(usage.buckets)
    peak = max([b.counts[k] for b in usage.buckets for k, _ in SERIES] + [1])
    # Four whole-number steps of 1, 2 or 5 x 10^k up to a round top.
    step, scale = 1, 1
    while step * 4 < peak:
        for m in (2, 5, 10):
            if m * scale * 4 >= peak or m == 10:
                step = m * scale
                break
        if step * 4 < peak:
            scale *= 10
    nice = step * 4
    slot = plot_w / n
    bar = max(1.0, slot / (len(SERIES) + 1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for i in range(5):
        value = nice * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#8a8a8a" stroke-opacity="0.35" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{int(value)}</text>'
        )
    hourly = usage.window == "24h"
    label_every = 3 if hourly else 5
    for i, b in enumerate(usage.buckets):
        x0 = left + slot * i + bar / 2
        for j, (key, colour) in enumerate(SERIES):
            v = b.counts[key]
            if not v:
                continue
            h = plot_h * v / nice
            parts.append(
                f'<rect x="{x0 + bar * j:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(labels[key])}: {v}</title></rect>'
            )
        if i % label_every == 0:
            text = b.start.strftime("%H:00") if hourly else b.start.strftime("%d %b")
            parts.append(
                f'<text x="{left + slot * i + slot / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle" font-size="11" fill="currentColor">{text}</text>'
            )
    lx = left
    for key, colour in SERIES:
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{height - 5}" font-size="11" fill="currentColor">'
            f"{escape(labels[key])}</text>"
        )
        lx += 14 + 8 * len(labels[key]) + 16
    parts.append("</svg>")
    return "".join(parts)
