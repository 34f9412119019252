"""TCP relays from the docker bridge's host address to the local stack's loopback ports.

``login-etl stack up`` binds moto and Postgres to 127.0.0.1, which a container cannot reach
(its 127.0.0.1 is its own), and SAM ignores ``--docker-network host``. Rather than change how
the stack listens, the relay listens on the bridge's gateway address, which only containers on
that network and the host itself can reach, and copies bytes both ways. Postgres sees a
loopback client, so its authentication rules stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Forward:
    """One listening address and the loopback port it forwards to."""

    listen_host: str
    listen_port: int
    target_port: int


@contextlib.contextmanager
def relays(listen_host: str, target_ports: list[int]) -> Iterator[list[Forward]]:
    """Listen on ``listen_host`` (a free port for each target) until the block ends."""
    loop = asyncio.new_event_loop()
    ready: list[Forward] = []
    started = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            servers = [await _listen(listen_host, port) for port in target_ports]
        except OSError as error:
            failure.append(error)
            started.set()
            return
        for server, port in zip(servers, target_ports, strict=True):
            ready.append(Forward(listen_host, server.sockets[0].getsockname()[1], port))
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # how the block's end stops us
            await asyncio.gather(*(s.serve_forever() for s in servers))

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        loop.close()
        raise RuntimeError(f"cannot listen on {listen_host}: {failure[0]}")
    try:
        yield ready
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)
        loop.close()


async def _listen(host: str, target_port: int) -> asyncio.Server:
    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _copy(reader, target_writer), _copy(target_reader, writer), return_exceptions=True
        )
        writer.close()
        target_writer.close()

    return await asyncio.start_server(connect, host, 0)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source has sent everything, then pass its end of stream on."""
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        sink.write_eof()
