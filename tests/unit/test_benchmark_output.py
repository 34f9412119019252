"""`make bench` leaves the checkout clean unless asked to record its figures in docs/."""

from __future__ import annotations

import subprocess

from login_etl_tools.benchmark import ROOT, output_dir


def ignored_by_git(path: str) -> bool:
    check = ["git", "-C", str(ROOT), "check-ignore", "--quiet", "--no-index", path]
    return subprocess.run(check, check=False).returncode == 0


def test_results_go_to_an_ignored_directory_by_default() -> None:
    default = output_dir([])

    assert default != ROOT / "docs"
    assert ignored_by_git(str((default / "benchmark.json").relative_to(ROOT)))
    assert ignored_by_git(str(output_dir(["--quick"]).relative_to(ROOT) / "benchmark.png"))


def test_recording_is_asked_for() -> None:
    assert output_dir(["--record"]) == ROOT / "docs"
    assert not ignored_by_git("docs/benchmark.json")
