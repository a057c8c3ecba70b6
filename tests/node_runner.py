"""Runs a Node script from tests/node and reads the JSON lines it prints, as they come."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")


def require_node(package: str) -> None:
    """Fail (never skip silently) when node or the package is missing."""
    if NODE is None or not (NODE_DIR / "node_modules" / package).is_dir():
        pytest.fail(
            "node or tests/node/node_modules missing: run `make node-deps`,"
            " or set LIVEGATE_TEST_NO_NODE=1 to skip"
        )


def run_node(
    script: str,
    env: dict[str, str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 40,
) -> list[dict[str, Any]]:
    """Run `script`, calling `on_event` for each JSON line as it arrives."""
    assert NODE is not None
    proc = subprocess.Popen(
        [NODE, str(NODE_DIR / script)],
        cwd=NODE_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    events: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                events.append(event)
                if on_event:
                    on_event(event)
        proc.wait()
    finally:
        timer.cancel()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert events, f"no output; rc={proc.returncode} stderr={stderr[-2000:]}"
    return events
