"""The upstream connection pool (tiktok/connections.py) and the client on it (tiktok/http.py),
against a raw TCP peer whose every answer byte the test chooses."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from livegate.config import Settings
from livegate.tiktok.connections import split_url
from livegate.tiktok.http import UpstreamClient, decoded, make_http_client


@dataclass
class Peer:
    """Answers the n-th request it reads (over all connections) with `script(n, head)`: bytes
    to send, with `close` after them, or None to hang up without an answer."""

    script: Callable[[int, bytes], tuple[bytes | None, bool]]
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.bodies.append(await reader.readexactly(length))
                self.requests.append(head)
                answer, close = self.script(len(self.requests) - 1, head)
                if answer == b"hold":
                    await self.hold.wait()
                    answer = ok(b"late")
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def ok(body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), headers, body)


async def serve(
    script: Callable[[int, bytes], tuple[bytes | None, bool]],
) -> tuple[Peer, asyncio.Server]:
    peer = Peer(script)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return peer, server


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[UpstreamClient]:
    async with make_http_client(Settings(data_dir=tmp_path, upstream_timeout=1.0)) as client:
        yield client


async def test_keep_alive_reuses_one_connection(http: UpstreamClient) -> None:
    peer, server = await serve(lambda n, _: (ok(b"answer %d" % n), False))
    async with server:
        for n in range(3):
            got = await http.send_buffered("GET", f"{peer.url}/p?n={n}", {"Accept": "*/*"})
            assert (got.status_code, got.content) == (200, b"answer %d" % n)
        assert (await http.get(f"{peer.url}/q")).content == b"answer 3"
    assert peer.connections == 1
    first = peer.requests[0].decode()
    assert first.startswith("GET /p?n=0 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "\r\nAccept: */*\r\n" in first and "\r\nAccept-Encoding: gzip, deflate\r\n" in first


async def test_the_query_goes_out_byte_for_byte(http: UpstreamClient) -> None:
    peer, server = await serve(lambda n, _: (ok(b"x"), False))
    query = "a=1%2C2&b=%7E~&X-Bogus=DFSz+x&empty=&"
    async with server:
        await http.send_buffered("GET", f"{peer.url}/webcast/im/fetch/?{query}#frag", {})
        await http.send_buffered("GET", f"{peer.url}?only=query", {})
        await http.send_buffered("GET", peer.url, {})
    lines = [r.split(b"\r\n", 1)[0] for r in peer.requests]
    assert lines == [
        f"GET /webcast/im/fetch/?{query} HTTP/1.1".encode(),
        b"GET /?only=query HTTP/1.1",
        b"GET / HTTP/1.1",
    ]


async def test_a_connection_the_peer_closed_is_not_reused(http: UpstreamClient) -> None:
    # The peer hangs up after each answer without saying so (as an idle timeout does).
    peer, server = await serve(lambda n, _: (ok(b"a%d" % n), True))
    async with server:
        first = await http.send_buffered("GET", f"{peer.url}/", {})
        await _until(lambda: all(c.closed for c in _idle(http)))
        second = await http.send_buffered("GET", f"{peer.url}/", {})
    assert (first.content, second.content) == (b"a0", b"a1")
    assert peer.connections == 2


async def test_idle_connections_past_keepalive_are_closed(http: UpstreamClient) -> None:
    from livegate.tiktok.connections import KEEPALIVE

    peer, server = await serve(lambda n, _: (ok(b"b%d" % n), False))
    async with server:
        burst = [http.send_buffered("GET", f"{peer.url}/", {}) for _ in range(3)]
        assert sorted(r.content for r in await asyncio.gather(*burst)) == [b"b0", b"b1", b"b2"]
        old = _idle(http)
        assert len(old) == 3
        for conn in old[:2]:
            conn.idle_since -= KEEPALIVE + 1
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"b3"
        assert _idle(http) == [old[2]]
        assert all(conn.transport.is_closing() for conn in old[:2])
    assert peer.connections == 3


async def test_connection_close_answer_is_not_reused(http: UpstreamClient) -> None:
    peer, server = await serve(lambda n, _: (ok(b"c%d" % n, b"Connection: close"), False))
    async with server:
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"c0"
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"c1"
    assert peer.connections == 2


async def test_chunked_and_until_close_bodies(http: UpstreamClient) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"
    answers = [(chunked, False), (until_close, True)]
    peer, server = await serve(lambda n, _: answers[n])
    async with server:
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"hello world"
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"to the end"
    assert peer.connections == 1


async def test_interim_answer_is_skipped(http: UpstreamClient) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final")
    peer, server = await serve(lambda n, _: (answer, False))
    async with server:
        got = await http.send_buffered("POST", f"{peer.url}/chat", {}, b"content=hi")
    assert (got.status_code, got.content) == (200, b"final")
    assert peer.bodies == [b"content=hi"]
    assert b"\r\nContent-Length: 10\r\n" in peer.requests[0]


async def test_head_answer_ends_at_its_headers(http: UpstreamClient) -> None:
    peer, server = await serve(
        lambda n, _: (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", False)
    )
    async with server:
        got = await http.head(f"{peer.url}/")
    assert (got.status_code, got.headers["content-length"], got.content) == (200, "500", b"")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: 1"},
        {"X-Evil": "a\nInjected: 1"},
        {"X-Evil": "a\rb"},
        {"X-Evil\r\nInjected": "1"},
        {"X-Nul": "a\x00b"},
    ],
)
async def test_a_header_that_would_smuggle_a_line_is_refused(
    http: UpstreamClient, headers: dict[str, str]
) -> None:
    peer, server = await serve(lambda n, _: (ok(b"x"), False))
    async with server:
        with pytest.raises(httpx.LocalProtocolError):
            await http.send_buffered("GET", f"{peer.url}/", headers)
        with pytest.raises(httpx.LocalProtocolError):
            await http.get(f"{peer.url}/", headers=headers)
        for target in ("/a b", "/caf\u00e9", "/a\r\nInjected: 1"):
            with pytest.raises(httpx.LocalProtocolError):
                await http.send_buffered("GET", f"{peer.url}{target}", {})
    assert peer.requests == []


async def test_slow_answer_is_read_timeout_and_the_connection_dropped(tmp_path: Path) -> None:
    answers: list[tuple[bytes | None, bool]] = [(b"hold", False), (ok(b"fresh"), False)]
    peer, server = await serve(lambda n, _: answers[n])
    settings = Settings(data_dir=tmp_path, upstream_timeout=0.3)
    async with server, make_http_client(settings) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{peer.url}/")
        peer.hold.set()  # the late answer must not be taken for the next request's
        got = await http.send_buffered("GET", f"{peer.url}/", {})
    assert got.content == b"fresh"
    assert peer.connections == 2


async def test_cancelled_exchange_never_hands_its_answer_to_the_next(
    http: UpstreamClient,
) -> None:
    answers: list[tuple[bytes | None, bool]] = [(b"hold", False), (ok(b"mine"), False)]
    peer, server = await serve(lambda n, _: answers[n])
    async with server:
        task = asyncio.ensure_future(http.send_buffered("GET", f"{peer.url}/", {}))
        await _until(lambda: len(peer.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        peer.hold.set()
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"mine"
    assert peer.connections == 2


async def test_refused_connection_is_connect_error(http: UpstreamClient) -> None:
    from tests.servers import free_port

    with pytest.raises(httpx.ConnectError):
        await http.send_buffered("GET", f"http://127.0.0.1:{free_port()}/", {})
    with pytest.raises(httpx.ConnectError):
        await http.get(f"http://127.0.0.1:{free_port()}/")


async def test_gzip_through_either_api_is_decoded_once(http: UpstreamClient) -> None:
    packed = gzip.compress(b"protobuf bytes")
    peer, server = await serve(lambda n, _: (ok(packed, b"Content-Encoding: gzip"), False))
    async with server:
        assert (await http.send_buffered("GET", f"{peer.url}/", {})).content == b"protobuf bytes"
        assert (await http.get(f"{peer.url}/")).content == b"protobuf bytes"


def test_decoded_undoes_each_encoding() -> None:
    body = b"payload " * 20
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decoded(body, None) == body and decoded(body, "identity") == body
    assert decoded(gzip.compress(body), "GZIP") == body
    assert decoded(zlib.compress(body), "deflate") == body
    assert decoded(raw_deflate.compress(body) + raw_deflate.flush(), "deflate") == body
    assert decoded(zlib.compress(gzip.compress(body)), "gzip, deflate") == body
    with pytest.raises(httpx.DecodingError):
        decoded(gzip.compress(body)[:-12], "gzip")  # cut short
    with pytest.raises(httpx.DecodingError):
        decoded(b"not gzip at all", "gzip")
    with pytest.raises(httpx.DecodingError):
        decoded(body, "br")  # never asked for


@pytest.mark.parametrize(
    ("url", "origin", "host", "target"),
    [
        ("https://webcast.tiktok.com/webcast/im/fetch/?a=1", ("https", "webcast.tiktok.com", 443),
         "webcast.tiktok.com", "/webcast/im/fetch/?a=1"),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080), "127.0.0.1:8080", "/"),
        ("HTTP://h:81?q=1#f", ("http", "h", 81), "h:81", "/?q=1"),
        ("http://[::1]:9/x", ("http", "::1", 9), "[::1]:9", "/x"),
        ("https://[2001:db8::1]/", ("https", "2001:db8::1", 443), "[2001:db8::1]", "/"),
    ],
)  # fmt: skip
def test_split_url(url: str, origin: tuple[str, str, int], host: str, target: str) -> None:
    assert split_url(url) == (origin, host, target)


@pytest.mark.parametrize(
    "url",
    ["ftp://h/x", "h/x", "http://user:pw@h/", "http://h:0/", "http://h:99999/", "http://h:x/",
     "http://:80/", "http://[::1/", "http://[::1]x/"],
)  # fmt: skip
def test_split_url_refuses(url: str) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        split_url(url)


# -- helpers -----------------------------------------------------------------------------------


def _idle(http: UpstreamClient) -> list[Any]:
    return [c for conns in http.pool._idle.values() for c in conns]


async def _until(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_requests_beyond_the_limit_wait_for_a_slot() -> None:
    from livegate.tiktok.connections import ConnectionPool, encode_head

    peer, server = await serve(lambda n, _: (b"hold", False))
    pool = ConnectionPool(max_connections=2)
    origin, host, _ = split_url(peer.url)
    head = encode_head("GET / HTTP/1.1\r\n", [("Host", host)])
    async with server:
        tasks = [
            asyncio.ensure_future(pool.send(origin, head, connect_timeout=1, read_timeout=5))
            for _ in range(5)
        ]
        await _until(lambda: len(peer.requests) == 2 and len(pool._waiting) == 3)
        assert pool._in_flight == 2
        tasks[4].cancel()  # a waiter given up on takes no slot with it
        await _until(lambda: len(pool._waiting) == 2)
        peer.hold.set()
        answers = await asyncio.gather(*tasks[:4])
        with pytest.raises(asyncio.CancelledError):
            await tasks[4]
        pool.close()
    assert [a.body for a in answers] == [b"late"] * 4
    assert (pool._in_flight, len(peer.requests), peer.connections) == (0, 4, 2)


def test_ticket_ids_are_distinct_hex_across_batches() -> None:
    from livegate.api.wsproxy import _RANDOM_BATCH, TICKET_BYTES, _random_id

    ids = [_random_id() for _ in range(3 * _RANDOM_BATCH // TICKET_BYTES)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 2 * TICKET_BYTES and int(i, 16) >= 0 for i in ids)


def test_held_tickets_leave_the_garbage_collector_and_come_back_whole() -> None:
    import gc

    from livegate.api.wsproxy import Ticket, TicketStore

    store = TicketStore()
    jar = {"sessionid": "s3cret", "tt-target-idc": "useast5"}
    ids = [store.issue(f"wss://push/{i}", 7, "d" * 64, jar) for i in range(500)]
    gc.collect()
    # A busy gateway holds tens of thousands; tracked, every full collection walks them.
    assert sum(gc.is_tracked(held) for held in store._tickets.values()) == 0
    taken = store.take(ids[3])
    assert taken == Ticket("wss://push/3", 7, "d" * 64, jar)
    assert "s3cret" not in repr(taken)
    assert store.take(ids[3]) is None  # single use


async def test_https_verifies_the_certificate_and_reuses_the_connection(tmp_path: Path) -> None:
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from livegate.tiktok.connections import ConnectionPool, encode_head

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_pem, key_pem)
    peer = Peer(lambda n, _: (ok(b"secure %d" % n), False))
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert_pem))
    async with server:
        origin, host, target = split_url(f"https://localhost:{port}/x?a=1")
        assert origin == ("https", "localhost", port)
        head = encode_head(f"GET {target} HTTP/1.1\r\n", [("Host", host)])
        pool = ConnectionPool(tls=trusting)
        answers = [
            await pool.send(origin, head, connect_timeout=2, read_timeout=2) for _ in range(2)
        ]
        pool.close()
        with pytest.raises(httpx.ConnectError):  # the system store does not know this cert
            await ConnectionPool().send(origin, head, connect_timeout=2, read_timeout=2)
    assert [a.body for a in answers] == [b"secure 0", b"secure 1"]
    assert peer.requests[0].startswith(b"GET /x?a=1 HTTP/1.1\r\nHost: localhost:")
    # Both requests on one TLS connection; the refused handshake never reached the peer.
    assert (peer.connections, len(peer.requests)) == (1, 2)
