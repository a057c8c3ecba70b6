"""`livegate serve` and `livegate simulator` as the contracts in DESIGN.md describe them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.servers import free_port, wait_for


@contextmanager
def running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "livegate.cli", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_migrates_and_serves_on_its_port(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {
        "LIVEGATE_DATA_DIR": str(tmp_path),
        "LIVEGATE_TIKTOK_URL": f"http://127.0.0.1:{sim_port}",
    }
    with (
        running(["simulator", "--port", str(sim_port)], env),
        running(["serve", "--port", str(port)], env),
    ):
        meta_url = f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
        # Each worker is a fresh interpreter: on a busy machine the first one takes a while.
        wait_for(lambda: answers(meta_url), timeout=90, interval=0.2, what="livegate serve")
        meta = httpx.get(meta_url).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
        wait_for(
            lambda: answers(f"http://127.0.0.1:{sim_port}/_sim/qr"),
            timeout=30,
            interval=0.2,
            what="simulator",
        )
        created = httpx.post(
            f"http://127.0.0.1:{sim_port}/_sim/accounts", json={"unique_id": "clitest"}
        )
        assert created.json()["unique_id"] == "clitest"
    assert (tmp_path / "livegate.db").exists()
    assert (tmp_path / "livegate.key").exists()
