"""The server's HTTP protocol joins the writes of one turn of the event loop (head and body) into one."""

from __future__ import annotations

import asyncio
import socket

import httpx
import uvicorn

from packyard.http.protocol import JoinedWritesProtocol, _JoinedWrites


class _Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_writes_of_one_turn_leave_as_one_and_close_sends_what_is_held() -> None:
    loop = asyncio.new_event_loop()
    try:
        real = _Recorder()
        joined = _JoinedWrites(real, loop)
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"{}")
        assert real.writes == []  # held until the turn ends
        loop.run_until_complete(asyncio.sleep(0))
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        joined.write(b"last")
        joined.close()  # a connection closed in the same turn still sends what it was given first
        assert real.writes[-1] == b"last"
        assert real.closed
        assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real transport's
    finally:
        loop.close()


def test_a_server_on_the_protocol_answers_keep_alive_requests() -> None:
    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
        )  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    async def scenario() -> list[tuple[int, str]]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, http=JoinedWritesProtocol, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answers = [await client.get(f"/n{n}") for n in range(5)]
            return [(r.status_code, r.text) for r in answers]
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    assert asyncio.run(scenario()) == [(200, f"/n{n}") for n in range(5)]
