"""moto's server mode (an HTTP AWS emulator) on a free loopback port, as a child process."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from login_etl_cli.ports import free_port, wait_for_port
from login_etl_cli.signals import shielded

START_TIMEOUT_S = 30


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
        """Start moto's server and wait until it accepts connections."""
        server = cls.spawn(port, detach=detach)
        server.wait_until_up()
        return server

    @classmethod
    def spawn(cls, port: int | None = None, *, detach: bool = False) -> MotoServer:
        """Start the process without waiting for it (the caller records its pid first).

        ``detach``: in a session of its own, so that it outlives this process and its
        terminal (``login-etl stack up``).
        """
        port = port or free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "login_etl_local.moto_launcher",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=detach,
        )
        return cls(process, port)

    def wait_until_up(self) -> None:
        """Wait until it accepts connections; stop it if it does not, or if we are stopped."""
        try:
            up = wait_for_port(self.port, timeout_s=START_TIMEOUT_S)
        except BaseException:  # a signal while waiting: it must not outlive us
            self.stop()
            raise
        if not up:
            self.stop()
            raise RuntimeError(
                f"the moto server did not start within {START_TIMEOUT_S} s"
                " (is moto[server] installed?)"
            )

    def stop(self) -> None:
        """Terminate the server process (not interrupted by a signal half-way)."""
        with shielded():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
