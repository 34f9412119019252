"""`make bench` leaves the checkout clean unless asked to record its figures in docs/."""

from __future__ import annotations

import subprocess

from benchmarks.benchmark import RECORD_DIR, RESULTS_DIR, ROOT


def ignored_by_git(path: str) -> bool:
    check = ["git", "-C", str(ROOT), "check-ignore", "--quiet", "--no-index", path]
    return subprocess.run(check, check=False).returncode == 0


def test_results_go_to_an_ignored_directory_by_default() -> None:
    assert RESULTS_DIR != RECORD_DIR
    for name in ("benchmark.json", "benchmark.png", "instructions.json"):
        assert ignored_by_git(str((RESULTS_DIR / name).relative_to(ROOT)))


def test_recording_is_asked_for() -> None:
    assert RECORD_DIR == ROOT / "docs"
    assert not ignored_by_git("docs/benchmark.json")
