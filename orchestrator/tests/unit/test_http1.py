"""The kept-alive HTTP/1.1 client (http1.py) against a real server on loopback that answers as
each test scripts it: reuse, chunked bodies, closed and stale connections, bad answers and
time-outs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from orchestrator.http1 import KeptAliveClient, ProtocolError

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class ScriptedServer:
    """Reads requests (head and Content-Length body) and lets `answer` reply; counts connections
    and requests. `answer` returns False to close the connection after its reply."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                if not await self.answer(reader, writer, len(self.requests)):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b"{}", extra: str = "") -> Answer:
    async def answer(_, writer, __) -> bool:
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
        )
        await writer.drain()
        return "close" not in extra.lower()

    return answer


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_requests_share_one_connection_and_send_their_body():
    async def scenario():
        server = ScriptedServer(ok(b'{"a": 1}'))
        async with server as url:
            client = KeptAliveClient(url)
            for number in range(3):
                status, body = await client.request(
                    "POST", f"/api/routes/user/{number}", body=b'{"target": "x"}'
                )
                assert (status, body) == (200, b'{"a": 1}')
            client.close()
        assert server.connections == 1
        assert server.requests[2].startswith(b"POST /api/routes/user/2 HTTP/1.1\r\n")
        assert server.requests[2].endswith(b'Content-Length: 15\r\n\r\n{"target": "x"}')

    run(scenario)


def test_a_chunked_answer_with_trailers_is_read_whole_and_the_connection_kept():
    async def chunked(_, writer, __) -> bool:
        writer.write(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        await writer.drain()
        return True

    async def scenario():
        server = ScriptedServer(chunked)
        async with server as url:
            client = KeptAliveClient(url)
            assert await client.request("GET", "/api/routes") == (201, b"Wikipedia")
            assert await client.request("GET", "/api/routes") == (201, b"Wikipedia")
            client.close()
        assert server.connections == 1

    run(scenario)


def test_connection_close_and_a_server_that_closes_idle_connections_cost_a_new_connection():
    async def scenario():
        server = ScriptedServer(ok(extra="Connection: close\r\n"))
        async with server as url:
            client = KeptAliveClient(url)
            assert (await client.request("GET", "/a"))[0] == 200
            assert (await client.request("GET", "/b"))[0] == 200
            client.close()
        assert server.connections == 2

    run(scenario)


def test_a_kept_connection_the_server_closed_unannounced_is_retried_once_on_a_new_one():
    async def answer_then_hang_up(reader, writer, number) -> bool:
        await ok()(reader, writer, number)
        return False  # closes without saying so, as an idle time-out does

    async def scenario():
        server = ScriptedServer(answer_then_hang_up)
        async with server as url:
            client = KeptAliveClient(url)
            for _ in range(3):
                assert (await client.request("DELETE", "/api/routes/user/a"))[0] == 200
            client.close()
        assert server.connections == 3
        assert len(server.requests) == 3  # each request reached the server once

    run(scenario)


def test_a_new_connection_closed_before_an_answer_fails_without_retrying_forever():
    async def hang_up(*_) -> bool:
        return False

    async def scenario():
        server = ScriptedServer(hang_up)
        async with server as url:
            client = KeptAliveClient(url)
            with pytest.raises(OSError, match="closed before an answer"):
                await client.request("GET", "/api/routes")
        assert server.connections == 1

    run(scenario)


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
    ],
    ids=["not-http", "bad-header", "cut-short", "bad-chunk", "too-large"],
)
def test_an_answer_that_is_not_http_or_is_cut_short_is_a_protocol_error(reply):
    async def garbage(_, writer, __) -> bool:
        writer.write(reply)
        await writer.drain()
        return False

    async def scenario():
        async with ScriptedServer(garbage) as url:
            client = KeptAliveClient(url)
            with pytest.raises(ProtocolError):
                await client.request("GET", "/api/routes")

    run(scenario)


def test_a_request_cut_short_by_its_time_out_does_not_leave_its_connection_for_the_next():
    async def slow_first(reader, writer, number) -> bool:
        if number == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")  # and the body never
            await writer.drain()
            await asyncio.sleep(5)
            return False
        return await ok(b"ok")(reader, writer, number)

    async def scenario():
        server = ScriptedServer(slow_first)
        async with server as url:
            client = KeptAliveClient(url)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await client.request("GET", "/slow")
            assert await client.request("GET", "/next") == (200, b"ok")
            client.close()
        assert server.connections == 2

    run(scenario)


def test_a_line_break_in_the_request_is_refused_before_anything_is_sent():
    async def scenario():
        server = ScriptedServer(ok())
        async with server as url:
            client = KeptAliveClient(url)
            for target, headers in (
                ("/a\r\nX-Injected: 1", {}),
                ("/a", {"Authorization": "token x\r\nX-Injected: 1"}),
            ):
                with pytest.raises(ValueError, match="line break"):
                    await client.request("GET", target, headers=headers)
        assert server.connections == 0

    run(scenario)
