"""The status line: what it says with and without a total, and nothing off a terminal."""

from __future__ import annotations

import io

from login_etl_cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_known_total_draws_a_bar_and_a_note() -> None:
    progress = Progress("settled", total=200, stream=Terminal())
    progress.update(50, note="3 failing, being retried")

    assert (
        progress.line(12.3)
        == "  [#####               ] 50/200 settled  12 s  3 failing, being retried"
    )


def test_an_unknown_total_still_counts_and_shows_time() -> None:
    progress = Progress("messages moved", stream=Terminal())
    progress.update(1234)

    assert progress.line(61) == "  1,234 messages moved  61 s"


def test_drawn_in_place_and_cleared_on_a_terminal() -> None:
    terminal = Terminal()
    with Progress("rows", total=10, stream=terminal, delay_s=3600) as progress:
        progress.update(10)
        progress.draw()
    output = terminal.getvalue()

    assert output.startswith("\r  [####################] 10/10 rows")
    assert output.endswith("\r")  # the line is blanked for what follows


def test_nothing_off_a_terminal() -> None:
    piped = io.StringIO()
    with Progress("rows", total=10, stream=piped, delay_s=0) as progress:
        progress.update(5)
        progress.draw()

    assert piped.getvalue() == ""
