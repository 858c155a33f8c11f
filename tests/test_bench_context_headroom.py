"""`python -m bench.context_headroom`: its reference is format 1.0's context, and every context is causal."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helper import synthetic_image
from PIL import Image

from bench import context_headroom as ch
from inrcodec.train.context import context_features


def _grid(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randint(-4, 5, (h, w), generator=torch.Generator().manual_seed(seed)).float()


@pytest.mark.parametrize("scheme", ch.SCHEMES)
@pytest.mark.parametrize(("h", "w"), [(9, 7), (8, 8)])
def test_every_scheme_starts_with_the_parent_neighbourhood(scheme: str, h: int, w: int) -> None:
    grid, parent = _grid(h, w, 0), _grid((h + 1) // 2, (w + 1) // 2, 1)
    rows = ch.context_rows(scheme, grid, parent).reshape(h, w, -1)
    for y, x in [(0, 0), (3, 4), (h - 1, w - 1), (4, 1)]:
        py, px = y // 2, x // 2
        hood = [float(parent[py + dy, px + dx]) if 0 <= py + dy < parent.shape[0] and 0 <= px + dx < parent.shape[1]
                else 0.0 for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert rows[y, x, :9].tolist() == hood
    assert torch.equal(ch.context_rows(scheme, grid, None)[:, :9], torch.zeros(h * w, 9))
    if scheme == "two-phase":  # format 1.0's context itself
        assert torch.equal(ch.context_rows(scheme, grid, parent), context_features(grid, parent))


def _decoded_before(scheme: str, cell: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether `other` is decoded before `cell` (same level) under `scheme`."""
    if scheme == "raster":
        return other < cell
    if scheme == "two-phase":  # anchors ((x + y) even) first
        return sum(other) % 2 < sum(cell) % 2
    rank = ch._step_of(torch.tensor(other[0]), torch.tensor(other[1]))
    return bool(rank < ch._step_of(torch.tensor(cell[0]), torch.tensor(cell[1])))


@pytest.mark.parametrize("scheme", ch.SCHEMES)
def test_a_cell_sees_only_cells_decoded_before_it(scheme: str) -> None:
    h, w = 8, 9
    grid, parent = _grid(h, w, 2), _grid(4, 5, 3)
    base = ch.context_rows(scheme, grid, parent)
    seen = False
    for changed in [(0, 0), (3, 4), (4, 4), (5, 2), (7, 8)]:
        moved = grid.clone()
        moved[changed] += 7
        diff = (ch.context_rows(scheme, moved, parent) != base).any(dim=1).reshape(h, w)
        for y in range(h):
            for x in range(w):
                if diff[y, x]:
                    assert _decoded_before(scheme, (y, x), changed), (scheme, (y, x), changed)
        seen = seen or bool(diff.any())
    assert seen  # the same-level context is used at all


def test_training_a_context_lowers_the_bits_and_reports_each_level(tmp_path: Path) -> None:
    latents = [_grid(16, 16, 4), _grid(8, 8, 5), _grid(4, 4, 6)]
    untrained, _ = ch.train_context("four-phase", (8,), latents, steps=0)
    trained, n_weights = ch.train_context("four-phase", (8,), latents, steps=60)
    assert len(trained) == 3 and sum(trained) < sum(untrained)
    assert n_weights == (9 + 8 + 4) * 8 + 8 + 8 * 2 + 2


def test_a_run_writes_rows_for_every_scheme_and_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(synthetic_image(32, 24)).save(tmp_path / "tiny.png")
    monkeypatch.setattr(ch, "CONTEXT_STEPS", 5)
    out = tmp_path / "out"
    ch.main(["--images", str(tmp_path), "--pick", "tiny:1e-2", "--steps", "12", "--out", str(out)])
    rows = list(csv.DictReader((out / ch.CSV_NAME).open()))
    assert {(r["scheme"], r["hidden"]) for r in rows} == {(s, "x".join(map(str, h))) for s in ch.SCHEMES
                                                        for h in ch.HIDDEN}
    assert next(float(r["relative_to_two_phase"]) for r in rows
                if (r["scheme"], r["hidden"]) == ("two-phase", "16x16")) == 0.0
    assert "| four-phase | 16x16 |" in (out / "headroom.md").read_text()
