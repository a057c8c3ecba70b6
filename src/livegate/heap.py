"""The servers' startup objects, moved out of the garbage collector's way."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once the app is built, before it serves.

    What exists by then (modules, routes, models, templates) lives as long as the process.
    Left to the collector, every full collection walks all of it again: under the webcast
    benchmark's load, at 64 concurrent fetches, those collections paused the simulator for
    up to 110 ms and the gateway for up to 100 ms. Frozen, they walk only what came later.
    """
    gc.collect()
    gc.freeze()
