"""The servers' startup objects, moved out of the garbage collector's way."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once the app is built, before it serves.

    What exists by then (modules, routes, models, templates) lives as long as the process.
    Left to the collector, every full collection walks all of it again, and under load those
    walks are long pauses; frozen, they are not walked (docs/benchmarks.md, notes).
    """
    gc.collect()
    gc.freeze()
