"""inrcodec: an overfitted neural image codec with its own `.coco` format.

A small network (latent grids, bicubic sampling or learned upsampling, and a thin MLP) is fitted to
each image, quantized and entropy-coded. The decoder evaluates it exactly in
integer arithmetic at any output size.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

# PyTorch's CPU build runs its threads on GNU OpenMP, whose threads spin some
# 300000 times at each barrier before they sleep. Beside another busy process
# (a second encode, any PyTorch job) a spinning thread holds the core its
# partner waits for: a `--time-limit 20` encode of kodim03 at 0.5 bpp got 11
# training steps instead of ~1500 and wrote 2.1 bpp at 15 dB (ad hoc,
# 2026-12-05). A short spin keeps most of the steps there and costs nothing
# measurable on an idle machine (bench/results/contention-2026-12-05). Set
# only if the user has not, and only takes effect where torch is not loaded
# yet (the command line; `import inrcodec` before torch).
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from .errors import CocoFormatError, ImageInputError, InrcodecError, UsageError  # noqa: E402

__all__ = [
    "CocoFormatError", "ImageInputError", "InrcodecError", "UsageError", "__version__",
    "decode", "decode_array", "encode", "encode_with_report", "inspect",
]


def __getattr__(name: str):  # noqa: ANN202
    # The API pulls in numpy, Pillow and the decoder (and torch when encoding);
    # import it lazily so `import inrcodec` stays cheap.
    if name in ("decode", "decode_array", "encode", "encode_with_report", "inspect"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'inrcodec' has no attribute {name!r}")
