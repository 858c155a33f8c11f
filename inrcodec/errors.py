"""Exceptions raised by inrcodec.

Every problem with something a user handed us maps onto one of these, so the
CLI can print a one-line message and exit with status 2 instead of a traceback.
"""

from __future__ import annotations


class InrcodecError(Exception):
    """Base class of every error inrcodec raises on purpose."""


class CocoFormatError(InrcodecError, ValueError):
    """A `.coco` bitstream is corrupt, truncated, unsupported or over a limit."""


class ImageInputError(InrcodecError, ValueError):
    """An input image cannot be read or is outside what the encoder accepts."""


class UsageError(InrcodecError, ValueError):
    """An argument (rate, size, device, path) is out of its valid range."""
