"""Regenerate the committed `.coco` samples and their pinned decoder output.

    INRCODEC_REGENERATE=1 python tests/make_samples.py                  # new files + hashes
    INRCODEC_REGENERATE=1 python tests/make_samples.py --missing-only   # files not yet there + hashes
    INRCODEC_REGENERATE=1 python tests/make_samples.py --expected-only  # hashes only

The samples pin the *decoder*: `test_samples.py` checks that decoding the
committed bytes gives the md5s in `tests/expected/samples.json`. Encoder output
is not reproducible across machines, so re-encoding gives different files;
only regenerate when the format version changes (and say so in CHANGELOG.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from dataclasses import replace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helper import DATA, EXPECTED, pixel_md5, synthetic_image

import inrcodec
from inrcodec.train import encoder

# name -> (width, height, encoder keyword arguments, context tile, learned
# upsampling). The network alone is about 400 bytes, so tiny images need high
# rates for a sensible picture. No context tile makes a version 1.0 file
# (checkerboard context), a (width, height) tile a version 2.0 file (wavefront
# context), and learned upsampling on top of a tile a version 3.0 file.
SAMPLES: dict[str, tuple[int, int, dict[str, float], tuple[int, int] | None, bool]] = {
    "gradient-48x32.coco": (48, 32, {"bpp": 5.0}, None, False),
    "gradient-64x48.coco": (64, 48, {"bpp": 3.0}, None, False),
    "odd-5x3.coco": (5, 3, {"lmbda": 0.01}, None, False),
    "v2-gradient-48x32.coco": (48, 32, {"bpp": 5.0}, (16, 8), False),
    "v2-odd-5x3.coco": (5, 3, {"lmbda": 0.01}, (2, 2), False),
    "v3-gradient-48x32.coco": (48, 32, {"bpp": 5.0}, (16, 8), True),
    "v3-odd-5x3.coco": (5, 3, {"lmbda": 0.01}, (2, 2), True),
}
OTHER_SIZE = "97x61"
ITERATIONS = 300


def encode_samples(missing_only: bool = False) -> None:
    """Encode the synthetic image at each sample's size into tests/data/ (only absent files if `missing_only`)."""
    DATA.mkdir(exist_ok=True)
    saved = dict(encoder.ARCHITECTURES)
    for name, (width, height, kwargs, tile, learned) in SAMPLES.items():
        if missing_only and (DATA / name).exists():
            continue
        try:
            for effort, arch in saved.items():
                encoder.ARCHITECTURES[effort] = replace(arch, context_tile=tile, learned_upsampling=learned)
            result, _ = inrcodec.encode_with_report(synthetic_image(width, height), iterations=ITERATIONS,
                                                    device="cpu", seed=0, **kwargs)
        finally:
            encoder.ARCHITECTURES.update(saved)
        (DATA / name).write_bytes(result.data)
        print(f"{name}: {len(result.data)} bytes, {result.bpp:.3f} bpp, PSNR {result.psnr:.2f} dB")


def expected_hashes() -> dict[str, object]:
    """md5 of every sample file and of its decoded pixels at two sizes."""
    out: dict[str, object] = {}
    for name, (width, height, kwargs, tile, learned) in SAMPLES.items():
        data = (DATA / name).read_bytes()
        out[name] = {
            "width": width,
            "height": height,
            "encoded_with": {**kwargs, "iterations": ITERATIONS, "seed": 0,
                             "context_tile": list(tile) if tile else None, "learned_upsampling": learned},
            "file_md5": hashlib.md5(data).hexdigest(),
            "pixels_md5": {
                "native": pixel_md5(inrcodec.decode_array(data)),
                OTHER_SIZE: pixel_md5(inrcodec.decode_array(data, size=OTHER_SIZE)),
            },
        }
    return out


def write_expected() -> None:
    EXPECTED.parent.mkdir(exist_ok=True)
    doc = {
        "about": "md5 of the decoder's uint8 RGB output for the committed samples; see tests/make_samples.py",
        "versions": {"inrcodec": inrcodec.__version__, "torch": torch.__version__,
                     "constriction": version("constriction"), "numpy": np.__version__},
        "samples": expected_hashes(),
    }
    EXPECTED.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {EXPECTED}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expected-only", action="store_true", help="keep the .coco files, recompute the md5s")
    parser.add_argument("--missing-only", action="store_true", help="encode only the samples not yet in tests/data")
    args = parser.parse_args(argv)
    if os.environ.get("INRCODEC_REGENERATE") != "1":
        parser.error("refusing to overwrite the pinned samples; set INRCODEC_REGENERATE=1")
    torch.set_num_threads(1)
    if not args.expected_only:
        encode_samples(args.missing_only)
    write_expected()
    return 0


if __name__ == "__main__":
    sys.exit(main())
