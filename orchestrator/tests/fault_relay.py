"""A fault-injecting HTTP relay: the orchestrator talks to it instead of the real part.

`FaultRelay(upstream)` listens on a free loopback port and forwards every HTTP/1.1 request, one
at a time per connection (keep-alive kept), to `upstream`: the Docker engine's unix socket
(`unix:///var/run/docker.sock`; give the orchestrator `DOCKER_HOST=tcp://127.0.0.1:<port>`) or
configurable-http-proxy's REST API (`http://127.0.0.1:<api port>`; the orchestrator's
`proxy_endpoint`). The real part answers; only the fault is made up:

- `pass_through()`: forward everything (the start state);
- `down()`: the part is unreachable: new connections are refused, open ones are reset;
- `fail(method, path_regex, status)`: matching requests get `status` and a JSON error body
  instead of being forwarded (several rules may be active, the latest first; `pass_through()`
  clears them);
- `down_after(method, path_regex, count)`: forward until the `count`-th matching request, which
  the real part carries out, then go down before its answer is returned (a crash mid-call).

Each forwarded request is parsed (Content-Length or chunked body) and its response read in full
(Content-Length, chunked, or until close) before it is written back with a Content-Length, so the
relay never hangs on a body and never splits one. Counters (`forwarded`, `injected`, `reset`)
and `seen(method, path_regex)` give a test the positive signal it waits for before it checks
that something did not happen. Streams that never end (`docker events`, attach) are not for
this relay: the orchestrator makes no such call.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class Rule:
    method: str
    path: re.Pattern[str]
    status: int

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and bool(self.path.search(path))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._unix_path)


class FaultRelay:
    """See the module docstring. Use as a context manager, or `start()` and `stop()`."""

    def __init__(self, upstream: str, timeout: float = 120.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme == "unix":
            self._connect: Callable[[], http.client.HTTPConnection] = lambda: _UnixConnection(
                parts.path, timeout
            )
        elif parts.scheme == "http":
            self._connect = lambda: http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=timeout
            )
        else:
            raise ValueError(f"upstream must be unix:// or http://, got {upstream!r}")
        self.upstream = upstream
        self._lock = threading.RLock()
        self._rules: list[Rule] = []
        self._down = False
        self._trip: tuple[Rule, int] | None = None  # down_after: the rule and matches left
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.forwarded: Counter[tuple[str, str]] = Counter()  # (method, path) -> count
        self.injected: Counter[tuple[str, str]] = Counter()
        self.reset = 0  # connections reset by down()

    # ----- where the orchestrator connects -----

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    # ----- faults -----

    def pass_through(self) -> None:
        """Forward everything again (and listen again after `down()`)."""
        with self._lock:
            self._rules.clear()
            self._trip = None
            was_down, self._down = self._down, False
        if was_down:
            self._listen()

    def down(self) -> None:
        """Unreachable: refuse new connections, reset the open ones."""
        with self._lock:
            self._down = True
            listener, self._listener = self._listener, None
            clients = list(self._clients)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for client in clients:
            self._reset(client)

    def fail(self, method: str, path_regex: str, status: int) -> None:
        """Answer `status` to requests of `method` (or "*") whose path matches `path_regex`."""
        with self._lock:
            self._rules.append(Rule(method.upper(), re.compile(path_regex), status))

    def down_after(self, method: str, path_regex: str, count: int = 1) -> None:
        """Go down once the `count`-th matching request was forwarded, losing its answer."""
        with self._lock:
            self._trip = (Rule(method.upper(), re.compile(path_regex), 0), count)

    def seen(self, method: str, path_regex: str, *, injected: bool = False) -> int:
        """How many matching requests were forwarded (or answered with a fault, `injected`)."""
        pattern = re.compile(path_regex)
        with self._lock:
            counter = self.injected if injected else self.forwarded
            return sum(
                count
                for (seen_method, path), count in counter.items()
                if method in ("*", seen_method) and pattern.search(path)
            )

    # ----- running -----

    def start(self) -> FaultRelay:
        self._listen()
        return self

    def stop(self) -> None:
        self.down()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> FaultRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after down()
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        self._spawn(self._accept, listener)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down() or stop()
            with self._lock:
                if self._down:
                    self._reset(client)
                    continue
                self._clients.add(client)
            self._spawn(self._serve, client)

    def _reset(self, client: socket.socket) -> None:
        """Close with RST, as a crashed peer does."""
        with contextlib.suppress(OSError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            client.close()
        with self._lock:
            self.reset += 1
            self._clients.discard(client)

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while self._serve_one(client, reader):
                pass
        except (OSError, ValueError, http.client.HTTPException):
            pass  # the client went away, or down() reset it
        finally:
            reader.close()
            with self._lock:
                gone = client in self._clients
                self._clients.discard(client)
            if gone:
                with contextlib.suppress(OSError):
                    client.close()

    def _serve_one(self, client: socket.socket, reader: BinaryIO) -> bool:
        """Relay one request; False when the connection is to be closed."""
        request = _read_request(reader)
        if request is None:
            return False
        method, target, version, headers, body = request
        path = urlsplit(target).path
        keep_alive = _keeps_alive(version, headers)
        with self._lock:
            rule = next((r for r in reversed(self._rules) if r.matches(method, path)), None)
            if rule is not None:
                self.injected[(method, path)] += 1
        if rule is not None:
            payload = json.dumps({"message": f"injected fault: HTTP {rule.status}"}).encode()
            response = (rule.status, http.client.responses.get(rule.status, "Error"), [
                ("Content-Type", "application/json")], payload)  # fmt: skip
        else:
            response = self._forward(method, target, headers, body)
            with self._lock:
                if self._down:  # went down while the part was answering: the answer is lost
                    raise ConnectionResetError
                self.forwarded[(method, path)] += 1
                if self._trip is not None and self._trip[0].matches(method, path):
                    trip, left = self._trip
                    self._trip = (trip, left - 1) if left > 1 else None
                    if left <= 1:
                        self.down()  # done by the part, never answered
                        raise ConnectionResetError
        status, reason, out_headers, payload = response
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{name}: {value}" for name, value in out_headers]
        head += [f"Content-Length: {len(payload)}"]
        head += ["Connection: keep-alive" if keep_alive else "Connection: close"]
        client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        return keep_alive

    def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = self._connect()
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.putheader("Connection", "close")
            connection.endheaders(body or None)
            response = connection.getresponse()
            payload = response.read()  # Content-Length, chunked or until close: all of it
            out = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
            return response.status, response.reason, out, payload
        finally:
            connection.close()


def _read_request(
    reader: BinaryIO,
) -> tuple[str, str, str, list[tuple[str, str]], bytes] | None:
    line = reader.readline(65537)
    while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
        line = reader.readline(65537)
    if not line:
        return None
    method, target, version = line.decode("latin-1").split()
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(65537)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _read_chunked(reader)
    else:
        body = reader.read(int(fields.get("content-length", "0") or 0))
    return method.upper(), target, version, headers, body


def _read_chunked(reader: BinaryIO) -> bytes:
    chunks = []
    while True:
        size = int(reader.readline(1026).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(reader.read(size))
        reader.readline(3)  # the CRLF after each chunk


def _keeps_alive(version: str, headers: list[tuple[str, str]]) -> bool:
    connection = {value.lower() for name, value in headers if name.lower() == "connection"}
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection
