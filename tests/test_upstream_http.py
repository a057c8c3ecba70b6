"""The one shared upstream client (tiktok/http.py), against a raw TCP peer whose every answer
byte the test chooses: keep-alive, the exact request target, header injection, timeouts,
Content-Encoding, TLS verification, no proxy from the environment and no cookie kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from livegate.config import Settings
from livegate.tiktok.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from livegate.tiktok.http import Upstream, make_http_client
from tests.servers import free_port


@dataclass
class Peer:
    """Answers the n-th request it reads (over all connections) with `script(n)`: the bytes
    to send, and whether to hang up after them. b"hold" waits for `hold` first."""

    script: Callable[[int], tuple[bytes, bool]]
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.requests.append(await reader.readuntil(b"\r\n\r\n"))
                answer, close = self.script(len(self.requests) - 1)
                if answer == b"hold":
                    await self.hold.wait()
                    answer = ok(b"late")
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
    script: Callable[[int], tuple[bytes, bool]], tls: ssl.SSLContext | None = None
) -> tuple[Peer, asyncio.Server]:
    peer = Peer(script)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    peer.url = f"{'https' if tls else 'http'}://localhost:{port}"
    return peer, server


@pytest.fixture
async def short_timeout_http(tmp_path: Path) -> AsyncIterator[Upstream]:
    async with make_http_client(Settings(data_dir=tmp_path, upstream_timeout=1.0)) as client:
        yield client


async def test_keep_alive_reuses_one_connection(short_timeout_http: Upstream) -> None:
    peer, server = await serve(lambda n: (ok(b"answer %d" % n), False))
    async with server:
        for n in range(3):
            got = await short_timeout_http.send("GET", f"{peer.url}/p?n={n}")
            assert (got.status, got.body) == (200, b"answer %d" % n)
        assert (await short_timeout_http.send("GET", f"{peer.url}/q")).body == b"answer 3"
    assert peer.connections == 1
    assert peer.requests[0].startswith(b"GET /p?n=0 HTTP/1.1\r\nHost: localhost:")


async def test_only_the_callers_headers_go_out(short_timeout_http: Upstream) -> None:
    peer, server = await serve(lambda n: (ok(b"x"), False))
    async with server:
        await short_timeout_http.send("GET", f"{peer.url}/", headers={"Accept": "a/b", "X-T": "1"})
    head = peer.requests[0].decode().lower().split("\r\n")[1:]
    names = sorted(line.partition(":")[0] for line in head if line)
    assert names == ["accept", "accept-encoding", "host", "user-agent", "x-t"]
    assert "user-agent: mozilla/5.0" in peer.requests[0].decode().lower()


async def test_the_query_goes_out_byte_for_byte(short_timeout_http: Upstream) -> None:
    # Signatures (X-Bogus, X-Gnarly) cover the exact query: no escape may be added or undone.
    peer, server = await serve(lambda n: (ok(b"x"), False))
    query = "a=1%2C2&b=%7E~&X-Bogus=DFSz+x&empty=&c=%E4%BD%A0&d=a/b?c:d@e!$'()*,;="
    async with server:
        await short_timeout_http.send("GET", f"{peer.url}/webcast/im/fetch/?{query}#frag")
        await short_timeout_http.send("GET", f"{peer.url}?only=query")
    lines = [r.split(b"\r\n", 1)[0] for r in peer.requests]
    assert lines == [
        f"GET /webcast/im/fetch/?{query} HTTP/1.1".encode(),
        b"GET /?only=query HTTP/1.1",
    ]


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
    short_timeout_http: Upstream, headers: dict[str, str]
) -> None:
    # A sign server's request_headers end up here: none may add a header or a request.
    peer, server = await serve(lambda n: (ok(b"x"), False))
    async with server:
        with pytest.raises(UpstreamError):
            await short_timeout_http.send("GET", f"{peer.url}/", headers=headers)
    assert peer.requests == []


async def test_a_target_that_would_smuggle_a_line_is_refused_or_escaped(
    short_timeout_http: Upstream,
) -> None:
    peer, server = await serve(lambda n: (ok(b"x"), False))
    async with server:
        with pytest.raises(UpstreamError):
            await short_timeout_http.send("GET", f"{peer.url}/a\r\nInjected: 1")
        await short_timeout_http.send("GET", f"{peer.url}/a b?c=d e")
    assert [r.split(b"\r\n", 1)[0] for r in peer.requests] == [b"GET /a%20b?c=d%20e HTTP/1.1"]


async def test_slow_answer_is_read_timeout_and_the_connection_dropped(tmp_path: Path) -> None:
    answers = [(b"hold", False), (ok(b"fresh"), False)]
    peer, server = await serve(lambda n: answers[n])
    settings = Settings(data_dir=tmp_path, upstream_timeout=0.3)
    async with server, make_http_client(settings) as short_timeout_http:
        with pytest.raises(UpstreamTimeout):
            await short_timeout_http.send("GET", f"{peer.url}/")
        peer.hold.set()  # the late answer must not be taken for the next request's
        got = await short_timeout_http.send("GET", f"{peer.url}/")
    assert got.body == b"fresh"
    assert peer.connections == 2


async def test_refused_connection_is_unreachable(short_timeout_http: Upstream) -> None:
    with pytest.raises(UpstreamUnreachable) as refused:
        await short_timeout_http.send("GET", f"http://127.0.0.1:{free_port()}/")
    assert refused.value.timed_out is False


async def test_a_gzip_answer_is_decoded(short_timeout_http: Upstream) -> None:
    packed = gzip.compress(b"protobuf bytes")
    peer, server = await serve(lambda n: (ok(packed, b"Content-Encoding: gzip"), False))
    async with server:
        assert (await short_timeout_http.send("GET", f"{peer.url}/")).body == b"protobuf bytes"


async def test_an_answer_over_the_limit_is_refused(
    short_timeout_http: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("livegate.tiktok.http.MAX_ANSWER_BYTES", 1000)
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"200\r\n" + b"x" * 512 + b"\r\n") * 3
        + b"0\r\n\r\n"
    )
    answers = [(ok(b"y" * 1001), False), (chunked, False), (ok(b"z" * 1000), False)]
    peer, server = await serve(lambda n: answers[n])
    async with server:
        for _ in range(2):
            with pytest.raises(UpstreamError, match="over"):
                await short_timeout_http.send("GET", f"{peer.url}/")
        assert len((await short_timeout_http.send("GET", f"{peer.url}/")).body) == 1000


@pytest.mark.spec("livegate", "security: one user's TikTok cookies never reach another's call")
async def test_a_set_cookie_answer_is_never_sent_back(
    short_timeout_http: Upstream,
) -> None:
    answer = ok(b"x", b"Set-Cookie: sessionid=s3cret; Path=/", b"Set-Cookie: ttwid=t; Path=/")
    peer, server = await serve(lambda n: (answer, False))
    async with server:
        first = await short_timeout_http.send("GET", f"{peer.url}/first")
        await short_timeout_http.send("GET", f"{peer.url}/second")
    assert first.header_list("set-cookie")[0].startswith("sessionid=s3cret")  # read, not kept
    assert b"cookie:" not in peer.requests[1].lower()


@pytest.mark.spec("livegate", "security: upstream calls ignore proxy environment variables")
async def test_proxy_variables_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.setenv("NO_PROXY", "")
    peer, server = await serve(lambda n: (ok(b"direct"), False))
    async with server, make_http_client(Settings(data_dir=tmp_path)) as short_timeout_http:
        assert (await short_timeout_http.send("GET", f"{peer.url}/")).body == b"direct"
    assert peer.connections == 1


@pytest.mark.spec("livegate", "security: upstream TLS certificates are verified")
async def test_https_verifies_the_certificate(short_timeout_http: Upstream, tmp_path: Path) -> None:
    cert_pem, key_pem = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_pem, key_pem)
    peer, server = await serve(lambda n: (ok(b"secure %d" % n), False), tls=server_tls)
    trusting = ssl.create_default_context(cafile=str(cert_pem))
    connector = aiohttp.TCPConnector(ssl=trusting)
    async with server, aiohttp.ClientSession(connector=connector) as trusts_it:
        with pytest.raises(UpstreamUnreachable):  # the default trust store does not know it
            await short_timeout_http.send("GET", f"{peer.url}/x?a=1")
        # The peer itself is sound: a client told to trust the certificate gets its answers.
        answers = []
        for _ in range(2):
            async with trusts_it.get(f"{peer.url}/x?a=1") as got:
                answers.append(await got.read())
    assert answers == [b"secure 0", b"secure 1"]
    assert peer.requests[0].startswith(b"GET /x?a=1 HTTP/1.1\r\nHost: localhost:")
    assert len(peer.requests) == 2  # the refused handshake never reached the peer


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem, key_pem
