"""CPU per call of the candidate upstream clients, against one local HTTP server.

The gateway's fetch path spends most of its own CPU in the upstream client; this measures that
part alone: N GETs in waves of C concurrent calls through httpx's own transport and through
aiohttp, the client process's CPU time per call. The server is uvicorn with a 2 kB answer, in
another process. See docs/benchmarks.md ("The upstream client").
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from yarl import URL

SERVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"x" * 2000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2000")]})
    await send({"type": "http.response.body", "body": body})
"""
HEADERS = {"User-Agent": "bench", "Accept": "*/*", "Accept-Encoding": "gzip"}


async def measure(calls: int, waves: int, get: Callable[[], Awaitable[bytes]]) -> float:
    await asyncio.gather(*(get() for _ in range(waves)))
    start = time.process_time()
    for _ in range(calls // waves):
        await asyncio.gather(*(get() for _ in range(waves)))
    return 1e6 * (time.process_time() - start) / calls


async def run(url: str, calls: int, waves: int) -> dict[str, float]:
    out = {}
    async with httpx.AsyncClient() as client:

        async def via_httpx() -> bytes:
            return (await client.send(httpx.Request("GET", url, headers=HEADERS))).content

        out["httpx"] = await measure(calls, waves, via_httpx)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        target = URL(url, encoded=True)

        async def via_aiohttp() -> bytes:
            async with session.get(target, headers=HEADERS) as response:
                return await response.read()

        out["aiohttp"] = await measure(calls, waves, via_aiohttp)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3200)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER + f"\nimport uvicorn; uvicorn.run(app, port={port}, log_level='warning')",
        ]
    )
    try:
        url = f"http://127.0.0.1:{port}/webcast/im/fetch/?a=1%2C2&b=%7E~&room_id=1&cursor="
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        print("conc  client   CPU µs/call")
        for conc in (int(c) for c in args.concurrency.split(",")):
            for name, cpu in asyncio.run(run(url, args.calls, conc)).items():
                print(f"{conc:>4}  {name:<8}{cpu:>10.0f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
