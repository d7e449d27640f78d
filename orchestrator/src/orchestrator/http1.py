"""HTTP/1.1 requests to one server over connections kept open between them (keep-alive).

For the proxy's REST API (proxy.py): every hand-out writes its route before the visitor's redirect,
and Tornado's simple client opens a new connection per request. Measured on the 2-core build
machine against configurable-http-proxy, per route written: 0.74-0.92 ms of the orchestrator's CPU
and 0.56-0.74 ms of the proxy's one thread with a connection each, 0.10-0.12 ms and 0.20-0.26 ms
over a kept connection (docs/performance.md).

What it may touch: sockets to the one server it is given; nothing else.

Contract: `request()` returns the status and body of any complete answer (a 404 or a 500 too),
and raises OSError when the connection failed (refused, reset, closed before the answer was
complete, or an answer that is not HTTP: `ProtocolError`); the caller bounds its time. A
connection is used again only after a complete answer that allows it, and not after
`IDLE_SECONDS` unused (the server closes idle ones: Node's default is 5 s). A request that fails
on a kept connection before any byte of the answer came is sent once more on a new one: the
server may have closed it meanwhile. The proxy API's requests allow that (a route's POST replaces
it, DELETE and GET repeat harmlessly). A request cut short (time-out, cancellation) closes its
connection, whose state is then unknown.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

IDLE_SECONDS = 4.0
MAX_IDLE = 16  # connections kept open at most; more are closed after their answer
MAX_BODY = 64 * 1024**2  # larger answers are refused (the routes of 10 000 notebooks fit)
MAX_HEADERS = 100


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _Stale(OSError):
    """A kept connection failed before any byte of the answer: the server had closed it."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class KeptAliveClient:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._host_header = parts.netloc.rsplit("@", 1)[-1]
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        """`method` `target` (a path with its query, already percent-encoded); (status, body).
        The caller bounds the time (`async with asyncio.timeout(...)`)."""
        head = _request_head(method, target, self._host_header, headers or {}, body)
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body, method)
            except _Stale:
                pass  # closed while idle: once more, on a new connection
        return await self._exchange(await self._open(), head, body, method)

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        while self._idle:
            self._idle.pop().close()

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, limit=1024**2
        )
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes | None, method: str
    ) -> tuple[int, bytes]:
        try:
            connection.writer.write(head + (body or b""))
            await connection.writer.drain()
            status_line = await connection.reader.readline()
        except OSError as error:  # refused or reset before any byte of the answer
            connection.close()
            raise _Stale(str(error) or type(error).__name__) from error
        except BaseException:  # cancelled or timed out: the connection's state is unknown
            connection.close()
            raise
        if not status_line:
            connection.close()
            raise _Stale("the connection was closed before an answer")
        try:
            status, reusable, answer = await _read_answer(connection.reader, status_line, method)
        except (asyncio.IncompleteReadError, ValueError) as error:  # cut short, or not HTTP
            connection.close()
            raise ProtocolError(f"an incomplete or unreadable answer: {error}") from error
        except BaseException:
            connection.close()
            raise
        if reusable and len(self._idle) < MAX_IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return status, answer


def _request_head(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    if any(character in part for part in lines for character in "\r\n\0"):
        raise ValueError("a request line or header holds a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_answer(
    reader: asyncio.StreamReader, status_line: bytes, method: str
) -> tuple[int, bool, bytes]:
    """(status, whether the connection may carry another request, body)."""
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(rest[:3])
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ProtocolError(f"not a header line: {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    else:
        raise ProtocolError(f"more than {MAX_HEADERS} header lines")
    reusable = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, reusable, b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, reusable, await _read_chunked(reader)
    if "content-length" in fields:
        length = int(fields["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ProtocolError(f"Content-Length {length} is out of bounds")
        return status, reusable, await reader.readexactly(length)
    body = await reader.read(MAX_BODY + 1)  # the body ends with the connection
    if len(body) > MAX_BODY:
        raise ProtocolError(f"an answer larger than {MAX_BODY} bytes")
    return status, False, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)  # ValueError if not
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise ProtocolError(f"an answer larger than {MAX_BODY} bytes")
        chunks.append(await reader.readexactly(size))
        if await reader.readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk does not end with a line break")
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass  # trailers: none wanted
    return b"".join(chunks)
