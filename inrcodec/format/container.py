"""The `.coco` container: signature, version and CRC-checked sections.

    signature  9 bytes  89 43 4F 43 4F 0D 0A 1A 0A   ("\\x89COCO\\r\\n\\x1a\\n")
    version    2 bytes  major, minor (u8 each)
    sections   repeated: type (4 ASCII bytes), length (u32 LE), payload,
               CRC-32 of type + payload (u32 LE)

Like PNG chunks: an upper-case first letter marks a critical section (a
decoder must understand it), a lower-case one an ancillary section (skipped
when unknown). The last section is `CEND` with an empty payload.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import CocoFormatError

SIGNATURE = b"\x89COCO\r\n\x1a\n"
VERSION_MAJOR = 3  # what a writer writes by default: the newest major
VERSION_MINOR = 0
# 1.0: checkerboard context; 2.0: wavefront context; 3.0: 2.0 plus learned upsampling (formats/coco.md)
READABLE_MAJORS = (1, 2, 3)
PREFIX_SIZE = len(SIGNATURE) + 2
SECTION_OVERHEAD = 12
END_SECTION = b"CEND"
MAX_FILE_SIZE = 256 * 1024 * 1024  # far above any real file; stops absurd reads


@dataclass(frozen=True)
class Section:
    """One section: its 4-byte type and its payload."""

    kind: bytes
    payload: bytes

    @property
    def critical(self) -> bool:
        return self.kind[:1].isupper()


def pack_sections(sections: list[Section], major: int = VERSION_MAJOR) -> bytes:
    """Signature, version `major`.0, the sections in order, then CEND."""
    if major not in READABLE_MAJORS:
        raise ValueError(f"no .coco major version {major}")
    parts = [SIGNATURE, bytes([major, VERSION_MINOR])]
    for section in [*sections, Section(END_SECTION, b"")]:
        body = section.kind + section.payload
        parts.append(section.kind + struct.pack("<I", len(section.payload)) + section.payload)
        parts.append(struct.pack("<I", zlib.crc32(body)))
    return b"".join(parts)


def looks_like_coco(prefix: bytes) -> bool:
    """True when the first bytes carry the `.coco` signature (Pillow's sniff)."""
    return prefix[: len(SIGNATURE)] == SIGNATURE


def unpack_sections(data: bytes) -> tuple[tuple[int, int], list[Section]]:
    """Split a `.coco` file into sections, checking framing and CRCs.

    Returns:
        ((major, minor), sections without CEND).

    Raises:
        CocoFormatError: bad signature, unsupported major version, truncated
            or oversized section, CRC mismatch, data after CEND, no CEND.
    """
    if len(data) > MAX_FILE_SIZE:
        raise CocoFormatError(f"file is {len(data)} bytes, over the {MAX_FILE_SIZE}-byte limit")
    if not looks_like_coco(data):
        raise CocoFormatError("not a .coco file (signature missing)")
    if len(data) < PREFIX_SIZE:
        raise CocoFormatError("file truncated inside the version field")
    major, minor = data[len(SIGNATURE)], data[len(SIGNATURE) + 1]
    if major not in READABLE_MAJORS:
        readable = " and ".join(str(m) for m in READABLE_MAJORS)
        raise CocoFormatError(f"unsupported .coco major version {major} (this decoder reads {readable})")
    pos, sections = PREFIX_SIZE, []
    while True:
        if len(data) - pos < SECTION_OVERHEAD:
            raise CocoFormatError(f"file truncated at byte {pos}: section header or CEND missing")
        kind = data[pos : pos + 4]
        if not all(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in kind):
            raise CocoFormatError(f"invalid section type {kind!r} at byte {pos}")
        (length,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise CocoFormatError(f"section {kind.decode()} at byte {pos} claims {length} bytes, past the end of the file")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack_from("<I", data, end)
        if crc != zlib.crc32(kind + payload):
            raise CocoFormatError(f"CRC mismatch in section {kind.decode()} at byte {pos}")
        pos = end + 4
        if kind == END_SECTION:
            if length:
                raise CocoFormatError("CEND section must be empty")
            if pos != len(data):
                raise CocoFormatError(f"{len(data) - pos} bytes of trailing data after CEND")
            return (major, minor), sections
        sections.append(Section(kind, payload))
