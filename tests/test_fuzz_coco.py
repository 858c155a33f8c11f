"""Smoke test of the fuzz job `bench/fuzz_coco.py` (the full run is a bench job, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from helper import DATA

from bench.fuzz_coco import all_cases, fuzz, reframe, sections, write_readme


def test_fuzz_job_small_run(tmp_path: Path) -> None:
    summary = fuzz(60, seed=3, log=lambda _: None)
    assert summary["cases"] == 60 and summary["failures"] == []
    assert sum(summary["outcomes"].values()) == 60
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    write_readme(summary, tmp_path / "README.md")
    assert "Failures\n\nNone." in (tmp_path / "README.md").read_text()


def test_cases_are_reproducible() -> None:
    samples = {p.name: p.read_bytes() for p in sorted(DATA.glob("*.coco"))}
    first = [(c.name, c.data) for _, c in all_cases(900, 7, samples)][-100:]  # past the structured ones
    again = [(c.name, c.data) for _, c in all_cases(900, 7, samples)][-100:]
    assert first == again and any(c[0] != first[0][0] for c in first)


def test_reframe_fixes_crcs_only_when_framing_holds() -> None:
    data = (DATA / "odd-5x3.coco").read_bytes()
    damaged = bytearray(data)
    damaged[30] ^= 0xFF  # inside HEAD
    fixed = reframe(bytes(damaged))
    assert fixed is not None and fixed != bytes(damaged) and sections(fixed) is not None
    assert reframe(data[:-3]) is None
