"""Codecs under test: one small `Codec` ABC and one subclass per codec.

A codec turns an RGB image into a complete file (``bytes``) at one *setting* and back. Settings are flat
dicts (``{"quality": 75}``, ``{"bpp": 0.5, "effort": "default"}``); their string form from
`setting_key` identifies a row in ``rd.csv`` and is what resuming compares.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import PIL
from PIL import Image, features

Setting = dict[str, Any]


def setting_key(setting: Setting) -> str:
    """Canonical string of a setting, e.g. ``"bpp=0.5;effort=default"`` (keys in insertion order)."""
    return ";".join(f"{k}={v}" for k, v in setting.items())


def parse_setting(key: str) -> Setting:
    """Inverse of `setting_key`: values come back as int, float or str, whichever parses first."""
    setting: Setting = {}
    for part in key.split(";"):
        name, _, text = part.partition("=")
        value: Any = text
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                continue
        setting[name] = value
    return setting


class Codec(ABC):
    """An image codec measured by the benchmark.

    Attributes:
        name: Short identifier used on the command line and in the CSV.
        learned: Learned codecs are drawn solid in plots, classical ones dashed.
        options: Fixed encoder options applied at every setting (reported verbatim).
        sweep: Default settings, chosen to cover about 0.1-2 bpp on Kodak.
    """

    name: ClassVar[str]
    learned: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {}
    sweep: ClassVar[tuple[Setting, ...]] = ()

    @classmethod
    def available(cls) -> bool:
        """Whether this codec can run here (its library is installed)."""
        return True

    @abstractmethod
    def version(self) -> str:
        """Library versions that determine the bitstream, e.g. ``"Pillow 13.0.0; libwebp 1.6.0"``."""

    @abstractmethod
    def encode(self, img: Image.Image, setting: Setting) -> bytes:
        """Compress an RGB image into a complete file at one setting."""

    def decode(self, data: bytes) -> Image.Image:
        """Decompress a file produced by `encode` into an RGB image (Pillow-readable formats)."""
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")


class PillowCodec(Codec):
    """A format Pillow writes itself; the sweep varies one keyword of ``Image.save``.

    Attributes:
        format: Pillow format name passed to ``Image.save``.
        library: Name of the underlying library, as shown in `version`.
        feature: ``PIL.features`` name of that library, to look its version up.
    """

    format: ClassVar[str]
    library: ClassVar[str]
    feature: ClassVar[str]

    def version(self) -> str:
        return f"Pillow {PIL.__version__}; {self.library} {features.version(self.feature)}"

    def encode(self, img: Image.Image, setting: Setting) -> bytes:
        buf = io.BytesIO()
        img.save(buf, self.format, **self.options, **setting)
        return buf.getvalue()


def _qualities(*values: int) -> tuple[Setting, ...]:
    return tuple({"quality": q} for q in values)


# Below quality 3 libjpeg's quantisers saturate at 255, so lower qualities add no lower rates.
_JPEG_QUALITIES = _qualities(3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90)


class Jpeg420(PillowCodec):
    """Baseline JPEG (libjpeg-turbo), 4:2:0 chroma subsampling, optimised Huffman tables."""

    name = "jpeg420"
    format = "JPEG"
    library = "libjpeg-turbo"
    feature = "libjpeg_turbo"
    options = {"subsampling": 2, "optimize": True}
    sweep = _JPEG_QUALITIES


class Jpeg444(Jpeg420):
    """Baseline JPEG without chroma subsampling (4:4:4)."""

    name = "jpeg444"
    options = {"subsampling": 0, "optimize": True}


class WebP(PillowCodec):
    """Lossy WebP (libwebp) at its slowest, best method."""

    name = "webp"
    format = "WEBP"
    library = "libwebp"
    feature = "webp"
    options = {"method": 6}
    sweep = _qualities(0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


class Avif(PillowCodec):
    """AVIF via libavif (AV1 intra), 4:2:0."""

    name = "avif"
    format = "AVIF"
    library = "libavif"
    feature = "avif"
    # One thread so encode times compare with the other single-threaded codecs and `--jobs` doesn't
    # oversubscribe the cores.
    options = {"speed": 4, "max_threads": 1}
    sweep = _qualities(5, 15, 25, 35, 45, 55, 65, 75, 85)

    def version(self) -> str:
        # libavif alone doesn't fix the bitstream: the AV1 encoder it links (aom, svt, rav1e) does.
        from PIL import _avif

        return f"{super().version()}; {_avif.codec_versions()}"


class Jpeg2000(PillowCodec):
    """JPEG 2000 (OpenJPEG), 9/7 wavelet, one quality layer at a target compression ratio.

    The setting ``ratio`` is the compression ratio relative to 24-bit RGB (so ``ratio=48`` aims at
    0.5 bpp). Files are raw J2K codestreams, which carry no JP2 container boxes.
    """

    name = "jp2"
    format = "JPEG2000"
    library = "openjpeg"
    feature = "jpg_2000"
    # Pillow's default mct=0 codes R, G and B independently; opj_compress enables the colour
    # transform for RGB, and without it JPEG 2000 loses about 1 dB.
    options = {"irreversible": True, "quality_mode": "rates", "mct": 1, "no_jp2": True}
    sweep = tuple({"ratio": r} for r in (240, 160, 120, 80, 60, 48, 32, 24, 16, 12))

    def encode(self, img: Image.Image, setting: Setting) -> bytes:
        buf = io.BytesIO()
        img.save(buf, self.format, quality_layers=[setting["ratio"]], **self.options)
        return buf.getvalue()


class JpegXL(PillowCodec):
    """JPEG XL via the optional ``pillow-jxl-plugin`` package (benchmarked only where installed)."""

    name = "jxl"
    format = "JXL"
    options = {"effort": 7}
    sweep = _qualities(5, 15, 25, 35, 45, 55, 65, 75, 85, 90)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("pillow_jxl") is not None

    def version(self) -> str:
        return f"Pillow {PIL.__version__}; pillow-jxl-plugin {importlib.metadata.version('pillow-jxl-plugin')}"

    def encode(self, img: Image.Image, setting: Setting) -> bytes:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)

        return super().encode(img, setting)

    def decode(self, data: bytes) -> Image.Image:
        import pillow_jxl  # noqa: F401

        return super().decode(data)


class InrCodec(Codec):
    """inrcodec through its package API; a setting is a target bpp and an effort preset.

    ``inrcodec`` (and torch) are imported only when this codec runs, so the other codecs work without it.
    """

    name = "inrcodec"
    learned = True
    options = {"device": "cpu", "seed": 0}
    sweep = tuple({"bpp": b, "effort": "default"} for b in (0.25, 0.5, 0.75, 1.0))

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("inrcodec") is not None

    @staticmethod
    def make_sweep(bpps: list[float], efforts: list[str], device: str = "cpu") -> tuple[Setting, ...]:
        """All (effort, target bpp) combinations, effort-major.

        A device other than the CPU joins each setting, so every row says where it was trained
        (and a GPU sweep's rows never pass for a CPU sweep's in a resumed results folder).
        """
        on = {} if device == "cpu" else {"device": device}
        return tuple({"bpp": b, "effort": e, **on} for e in efforts for b in bpps)

    def version(self) -> str:
        import torch

        import inrcodec

        return f"inrcodec {inrcodec.__version__}; torch {torch.__version__}"

    def encode(self, img: Image.Image, setting: Setting) -> bytes:
        import inrcodec

        options = {**self.options, "device": setting.get("device", self.options["device"])}
        return inrcodec.encode(img, bpp=setting["bpp"], effort=setting["effort"], **options)

    def decode(self, data: bytes) -> Image.Image:
        import inrcodec

        return inrcodec.decode(data).convert("RGB")


CODECS: dict[str, type[Codec]] = {cls.name: cls for cls in (Jpeg420, Jpeg444, WebP, Avif, Jpeg2000, JpegXL, InrCodec)}
CLASSICAL = [name for name, cls in CODECS.items() if not cls.learned and cls.available()]
"""Classical codecs installed here: the default selection of ``python -m bench rd``."""


def is_learned(name: str) -> bool:
    """Whether a codec named in a CSV is a learned one (unknown names count as classical)."""
    cls = CODECS.get(name)
    return cls is not None and cls.learned
