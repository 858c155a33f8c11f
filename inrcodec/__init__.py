"""inrcodec: an overfitted neural image codec with its own `.coco` format.

A small network (latent grids, bicubic sampling or learned upsampling, and a thin MLP) is fitted to
each image, quantized and entropy-coded. The decoder evaluates it exactly in
integer arithmetic at any output size.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CocoFormatError, ImageInputError, InrcodecError, UsageError  # noqa: E402

__all__ = [
    "CocoFormatError", "ImageInputError", "InrcodecError", "UsageError", "__version__",
    "decode", "decode_array", "encode", "encode_with_report", "inspect",
]


def __getattr__(name: str):  # noqa: ANN202
    # The API pulls in torch; import it lazily so `import inrcodec` stays cheap.
    if name in ("decode", "decode_array", "encode", "encode_with_report", "inspect"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'inrcodec' has no attribute {name!r}")
