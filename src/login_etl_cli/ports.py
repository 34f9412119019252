"""Loopback ports: whether something answers on one, and a free one for a throwaway server.

Here, in the CLI, though the local stack uses most of it (free ports for its servers, waiting
for them): the CLI needs ``port_is_open`` to recognise the exports of a stack that is gone
(``targets``), and the local stack may depend on the CLI, never the other way round.
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout_s: float) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_is_open(port):
            return True
        time.sleep(0.05)
    return False
