"""moto's server mode (an HTTP AWS emulator) on a free loopback port, as a child process."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from login_etl_tools.ports import free_port, wait_for_port


@dataclass
class MotoServer:
    """A running moto server; ``endpoint_url`` goes into ``AWS_ENDPOINT_URL``."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, *, detach: bool = False) -> MotoServer:
        """Start moto's server and wait until it accepts connections.

        ``detach``: in a session of its own, so that it outlives this process and its
        terminal (``login-etl stack up``).
        """
        port = port or free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "login_etl_tools.moto_launcher",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=detach,
        )
        if not wait_for_port(port, timeout_s=30):
            process.kill()
            raise RuntimeError(
                "the moto server did not start within 30 s (is moto[server] installed?)"
            )
        return cls(process, port)

    def stop(self) -> None:
        """Terminate the server process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
