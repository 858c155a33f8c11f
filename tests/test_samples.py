"""Pinned decoder output: the committed `.coco` samples must decode to the same pixels forever.

The decoder is exact integer arithmetic, so these md5s hold on any machine,
thread count and (for a given `.coco` major version) any inrcodec version. A
failure here means the bitstream's meaning changed: bump the format version
and regenerate with `INRCODEC_REGENERATE=1 python tests/make_samples.py --expected-only`.
"""

from __future__ import annotations

import hashlib

import pytest
from helper import DATA, SAMPLE_NAMES, pixel_md5
from make_samples import OTHER_SIZE, SAMPLES

import inrcodec


def test_every_committed_sample_is_listed() -> None:
    assert SAMPLE_NAMES == sorted(SAMPLES)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_file_unchanged(name: str, expected: dict) -> None:
    data = (DATA / name).read_bytes()
    assert hashlib.md5(data).hexdigest() == expected[name]["file_md5"]
    info = inrcodec.inspect(data)
    assert (info.width, info.height) == (expected[name]["width"], expected[name]["height"])


@pytest.mark.parametrize("size", ["native", OTHER_SIZE])
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_decodes_to_pinned_pixels(name: str, size: str, expected: dict) -> None:
    data = (DATA / name).read_bytes()
    pixels = inrcodec.decode_array(data, size=None if size == "native" else size)
    want = (expected[name]["height"], expected[name]["width"]) if size == "native" else (61, 97)
    assert pixels.shape == (*want, 3)
    assert pixel_md5(pixels) == expected[name]["pixels_md5"][size]
