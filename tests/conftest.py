"""Fixtures shared by the inrcodec tests: a tiny image, one cached encode, the samples.

Everything is sized for a 2-core machine: one 48x32 encode of 30 steps (plus
the encoder's rate refit) shared by the whole session, the committed samples
for everything that only needs a valid file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helper import DATA, EXPECTED, encode_tiny, synthetic_image

# Tiny tensors gain nothing from threads, and on a busy machine intra-op
# thread hand-offs make them ~100x slower. Tests that compare thread counts
# set them explicitly (in subprocesses or with `torch_threads`).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_image() -> np.ndarray:
    """The deterministic 48x32 RGB test image (gradients, checkerboard edges, a disc)."""
    return synthetic_image(48, 32)


@pytest.fixture(scope="session")
def tiny_encoded():
    """The session's one encode of `tiny_image`: (EncodeResult, notes)."""
    return encode_tiny()


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads(EXPECTED.read_text())["samples"]


@pytest.fixture(scope="session")
def sample() -> bytes:
    """The 48x32 committed sample file."""
    return (DATA / "gradient-48x32.coco").read_bytes()


@pytest.fixture
def fast_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every effort a few steps and skip rate refits (CLI tests cannot pass iterations=)."""
    from inrcodec.train import encoder
    from inrcodec.train.fit import Schedule

    monkeypatch.setattr(encoder, "SCHEDULES", {name: Schedule(iterations=8) for name in encoder.SCHEDULES})
    monkeypatch.setattr(encoder, "MAX_REFITS", 0)


@pytest.fixture
def torch_threads():
    """Set torch's thread count inside a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
