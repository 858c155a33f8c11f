"""Smoke test of the fuzz job `bench/fuzz_coco.py` (the full run is a bench job, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from helper import DATA

from bench.fuzz_coco import (
    all_cases,
    fuzz,
    head_field_offsets,
    major_version,
    reframe,
    sections,
    structured,
    write_readme,
)


def test_fuzz_job_small_run(tmp_path: Path) -> None:
    summary = fuzz(60, seed=3, log=lambda _: None)
    assert summary["cases"] == 60 and summary["failures"] == []
    assert sum(summary["outcomes"].values()) == 60
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    write_readme(summary, tmp_path / "README.md")
    assert "Failures\n\nNone." in (tmp_path / "README.md").read_text()


def test_cases_are_reproducible() -> None:
    samples = {p.name: p.read_bytes() for p in sorted(DATA.glob("*.coco"))}
    n_structured = sum(1 for name, data in samples.items() for _ in structured(name, data))
    first = [c for _, c in all_cases(n_structured + 100, 7, samples)][-100:]  # past the structured ones
    again = [c for _, c in all_cases(n_structured + 100, 7, samples)][-100:]
    assert all(c.random for c in first)
    assert [(c.name, c.data) for c in first] == [(c.name, c.data) for c in again]
    assert len({c.name for c in first}) > 1


def test_head_fields_of_every_version_cover_the_whole_head() -> None:
    """The structured cases reach every HEAD byte of 1.0, 2.0 and 3.0 samples (tile, upsampling taps)."""
    majors = set()
    for path in sorted(DATA.glob("*.coco")):
        data = path.read_bytes()
        head = dict(sections(data) or [])[b"HEAD"]
        major = major_version(data)
        fields = head_field_offsets(head, major)
        covered = [off + i for _, off, size in fields for i in range(size)]
        assert covered == list(range(len(head))), path.name
        names = {name for name, _, _ in fields}
        assert ("tile_width" in names) == (major >= 2) and any("up_tap" in n for n in names) == (major >= 3)
        majors.add(major)
    assert majors == {1, 2, 3}


def test_reframe_fixes_crcs_only_when_framing_holds() -> None:
    data = (DATA / "odd-5x3.coco").read_bytes()
    damaged = bytearray(data)
    damaged[30] ^= 0xFF  # inside HEAD
    fixed = reframe(bytes(damaged))
    assert fixed is not None and fixed != bytes(damaged) and sections(fixed) is not None
    assert reframe(data[:-3]) is None
