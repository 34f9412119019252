"""Where the take-home's 100 real messages are, beside the project (never copied into it)."""

from __future__ import annotations

from pathlib import Path

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "sample_data.json"
