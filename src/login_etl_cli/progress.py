"""A status line on stderr for any work that takes more than a second.

The old bar was drawn only when a batch finished and only with a known total, so ``run
--no-seed --mode schedule`` showed nothing for 40 s (total 0), and a bar at 100 % sat still
through the retries. Here a ticker thread redraws the line every half second once the work has
run for a second: the elapsed time moves even while nothing else does, and ``note`` says what
is being waited for. Nothing is drawn unless stderr is a terminal (pipes and logs stay clean).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 20


class Progress:
    """``with Progress("sending", total=n) as p: p.update(done)``; one line, redrawn in place."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        delay_s: float = 1.0,
        tick_s: float = 0.5,
    ) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.note = ""
        self._stream = stream or sys.stderr
        self._delay_s = delay_s
        self._tick_s = tick_s
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drawn = 0  # width of the line on screen, to clear it
        self._ticker: threading.Thread | None = None

    @property
    def shown(self) -> bool:
        """Whether anything is drawn at all."""
        return self._stream.isatty()

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.shown:
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="progress")
            self._ticker.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.clear()

    def update(
        self, done: int | None = None, *, total: int | None = None, note: str | None = None
    ) -> None:
        """New figures; drawn at the next tick."""
        with self._lock:
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if note is not None:
                self.note = note

    def line(self, elapsed_s: float) -> str:
        """The status line for these figures."""
        with self._lock:
            done, total, note = self.done, self.total, self.note
        if total:
            filled = BAR_WIDTH * min(done, total) // total
            figures = f"[{'#' * filled:<{BAR_WIDTH}}] {min(done, total):,}/{total:,} {self.what}"
        else:
            figures = f"{done:,} {self.what}"
        return f"  {figures}  {elapsed_s:.0f} s{f'  {note}' if note else ''}"

    def draw(self) -> None:
        """Redraw the line now (the ticker calls it; tests may too)."""
        if not self.shown:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
        text = self.line(time.monotonic() - self._started)[:width]
        padding = " " * max(0, self._drawn - len(text))
        self._stream.write(f"\r{text}{padding}")
        self._stream.flush()
        self._drawn = len(text)

    def clear(self) -> None:
        """Remove the line, so that what follows starts on a clean one."""
        if self.shown and self._drawn:
            self._stream.write(f"\r{' ' * self._drawn}\r")
            self._stream.flush()
            self._drawn = 0

    def _tick(self) -> None:
        if self._stop.wait(self._delay_s):
            return
        while True:
            self.draw()
            if self._stop.wait(self._tick_s):
                return
