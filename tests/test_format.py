"""The `.coco` container and HEAD parser against truncated, corrupted and crafted files.

Modelled on Pillow's `Tests/test_file_qoi.py`: a sanity test, a header round
trip, truncation at every length, and "any bytes give only our declared
exception". The rule checked everywhere: a damaged file either decodes to
exactly the original pixels (the damage hit a byte the format lets a decoder
ignore) or raises `CocoFormatError`; never another exception type. Crafted
files with valid CRCs may also decode to *other* pixels, but only with the
size their header states.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from helper import DATA, Head, build, frame, head_of, payloads, replace_section, spans, with_head
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inrcodec
from inrcodec import CocoFormatError
from inrcodec.format.architecture import MAX_CONTEXT_TILE, MAX_HIDDEN_LAYERS, MAX_LEVELS, MIN_CONTEXT_TILE, Architecture
from inrcodec.format.container import MAX_FILE_SIZE, unpack_sections
from inrcodec.format.fixedpoint import ACT_FRAC_BITS, MAX_LAYER_WIDTH, MAX_WEIGHT_EXP, SCALE_K_MAX, SCALE_K_MIN
from inrcodec.format.header import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, Header, LayerCoding, pack_header, parse_header

SAMPLE = (DATA / "gradient-48x32.coco").read_bytes()
SPANS = {s.kind: s for s in spans(SAMPLE)}
FUZZ = settings(deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None)


def decode_or_error(data: bytes) -> np.ndarray | None:
    """The decoded pixels, or None on CocoFormatError (any other exception fails the test)."""
    try:
        return inrcodec.decode_array(data)
    except CocoFormatError:
        return None


def assert_original_or_error(data: bytes, original: np.ndarray) -> None:
    pixels = decode_or_error(data)
    if pixels is not None:
        np.testing.assert_array_equal(pixels, original)


def assert_valid_or_error(data: bytes) -> None:
    """For crafted files with correct CRCs: an error, or pixels of the stated size."""
    pixels = decode_or_error(data)
    if pixels is not None:
        head = head_of(data)
        assert pixels.shape == (head.height, head.width, 3) and pixels.dtype == np.uint8


@pytest.fixture(scope="module")
def original() -> np.ndarray:
    return inrcodec.decode_array(SAMPLE)


# --- sanity -----------------------------------------------------------------------------------


def test_sanity(original: np.ndarray) -> None:
    assert original.shape == (32, 48, 3) and original.dtype == np.uint8
    info = inrcodec.inspect(SAMPLE)
    assert info.version == (1, 0)
    assert (info.width, info.height, info.file_bytes) == (48, 32, len(SAMPLE))
    assert info.bpp == pytest.approx(len(SAMPLE) * 8 / (48 * 32))
    assert sum(info.section_sizes.values()) == len(SAMPLE)
    assert set(info.section_sizes) == {"signature+version", "HEAD", "NETW", "LATS", "CEND"}
    fields = dict(info.fields)
    assert fields["width x height"] == "48 x 32"
    assert fields["synthesis MLP"] == "7 -> 16 -> 16 -> 3"


def test_not_coco() -> None:
    for data in (b"", b"\x89PNG\r\n\x1a\n" + bytes(40), b"COCO", SAMPLE[1:]):
        with pytest.raises(CocoFormatError, match="signature"):
            inrcodec.decode_array(data)


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        inrcodec.decode_array("gradient-48x32.coco")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_accepted(original: np.ndarray) -> None:
    np.testing.assert_array_equal(inrcodec.decode_array(bytearray(SAMPLE)), original)
    np.testing.assert_array_equal(inrcodec.decode_array(memoryview(SAMPLE)), original)


# --- HEAD round trip ------------------------------------------------------------------------


@st.composite
def headers(draw: st.DrawFn) -> Header:
    width = draw(st.integers(1, MAX_IMAGE_SIDE))
    height = draw(st.integers(1, min(MAX_IMAGE_SIDE, MAX_IMAGE_PIXELS // width)))
    hidden = st.lists(st.integers(1, MAX_LAYER_WIDTH), max_size=MAX_HIDDEN_LAYERS).map(tuple)
    side = st.sampled_from([MIN_CONTEXT_TILE, 16, 32, MAX_CONTEXT_TILE])
    tile = draw(st.none() | st.tuples(side, side))
    arch = Architecture(draw(st.integers(1, MAX_LEVELS)), draw(hidden), draw(hidden), tile)
    layers = []
    for _ in range(len(arch.synth_hidden) + len(arch.arm_hidden) + 2):
        we = draw(st.integers(0, MAX_WEIGHT_EXP))
        ks = st.integers(SCALE_K_MIN, SCALE_K_MAX)
        layers.append(LayerCoding(we, draw(st.integers(0, we + ACT_FRAC_BITS)), draw(ks), draw(ks)))
    return Header(width, height, arch, tuple(layers))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(headers())
def test_header_round_trip(header: Header) -> None:
    packed = pack_header(header)
    major = header.arch.format_major
    assert parse_header(packed, major) == header
    assert Head.parse(packed, major).pack() == packed  # the tests' own packer agrees with the format
    assert len(packed) == 15 + 2 * (major == 2) + 5 * (len(header.arch.synth_hidden) + len(header.arch.arm_hidden))
    with pytest.raises(CocoFormatError):
        parse_header(packed[:-1], major)
    with pytest.raises(CocoFormatError):
        parse_header(packed + b"\0", major)


def test_pack_header_refuses_out_of_range() -> None:
    header = parse_header(dict(payloads(SAMPLE))[b"HEAD"])
    for bad in (Header(0, 32, header.arch, header.layers), Header(48, MAX_IMAGE_SIDE + 1, header.arch, header.layers),
                Header(48, 32, header.arch, header.layers[:-1])):
        with pytest.raises(CocoFormatError):
            pack_header(bad)


# --- truncation, flips, CRCs ----------------------------------------------------------------


@pytest.mark.parametrize("length", range(len(SAMPLE)))
def test_truncated(length: int) -> None:
    with pytest.raises(CocoFormatError):
        inrcodec.decode_array(SAMPLE[:length])


@pytest.mark.parametrize("pos", [*range(SPANS[b"HEAD"].start, SPANS[b"HEAD"].end), *range(0, len(SAMPLE), 13)])
def test_flipped_byte(pos: int, original: np.ndarray) -> None:
    for mask in (0x01, 0x80, 0xFF):
        data = bytearray(SAMPLE)
        data[pos] ^= mask
        assert_original_or_error(bytes(data), original)


def test_minor_version_is_ignored(original: np.ndarray) -> None:
    for minor in (1, 7, 255):
        data = SAMPLE[:10] + bytes([minor]) + SAMPLE[11:]
        np.testing.assert_array_equal(inrcodec.decode_array(data), original)
        assert inrcodec.inspect(data).version == (1, minor)


@pytest.mark.parametrize("major", [0, 4, 255])
def test_unknown_major_version(major: int) -> None:
    data = SAMPLE[:9] + bytes([major]) + SAMPLE[10:]
    with pytest.raises(CocoFormatError, match="major version"):
        inrcodec.decode_array(data)
    with pytest.raises(CocoFormatError):
        inrcodec.inspect(data)


@pytest.mark.parametrize("kind", [b"HEAD", b"NETW", b"LATS", b"CEND"])
def test_wrong_crc(kind: bytes) -> None:
    span = SPANS[kind]
    (crc,) = struct.unpack_from("<I", SAMPLE, span.payload_end)
    data = SAMPLE[: span.payload_end] + struct.pack("<I", crc ^ 1) + SAMPLE[span.end :]
    with pytest.raises(CocoFormatError, match="CRC"):
        inrcodec.decode_array(data)


# --- section structure ----------------------------------------------------------------------

SECTIONS = payloads(SAMPLE)  # HEAD, NETW, LATS, CEND


@pytest.mark.parametrize("where", range(4))
@pytest.mark.parametrize("kind", [b"ABCD", b"Xyzw", b"CENx"])
def test_unknown_critical_section(kind: bytes, where: int) -> None:
    sections = list(SECTIONS)
    sections.insert(where, (kind, b"payload"))
    with pytest.raises(CocoFormatError, match="unknown critical section"):
        inrcodec.decode_array(build(sections))


@pytest.mark.parametrize("where", range(4))
@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(256)) * 40])
def test_unknown_ancillary_section_is_skipped(payload: bytes, where: int, original: np.ndarray) -> None:
    sections = list(SECTIONS)
    sections.insert(where, (b"tEXt", payload))
    sections.insert(where, (b"cend", b""))  # CEND in lower case is just another ancillary section
    data = build(sections)
    np.testing.assert_array_equal(inrcodec.decode_array(data), original)
    assert inrcodec.inspect(data).section_sizes["tEXt"] == len(payload) + 12


@pytest.mark.parametrize("tail", [b"\0", bytes(12), frame(b"CEND", b""), frame(b"tEXt", b"after the end")])
def test_trailing_data(tail: bytes) -> None:
    with pytest.raises(CocoFormatError, match="trailing"):
        inrcodec.decode_array(SAMPLE + tail)


def test_missing_or_nonempty_cend() -> None:
    with pytest.raises(CocoFormatError):
        inrcodec.decode_array(build(SECTIONS[:3]))
    with pytest.raises(CocoFormatError, match="CEND"):
        inrcodec.decode_array(build([*SECTIONS[:3], (b"CEND", b"x")]))


@pytest.mark.parametrize("order", [(1, 0, 2), (0, 2, 1), (2, 1, 0), (0, 0, 1, 2), (0, 1, 1, 2), (0, 1, 2, 2),
                                   (0, 1), (0, 2), (1, 2), ()])
def test_duplicate_missing_or_out_of_order_sections(order: tuple[int, ...]) -> None:
    data = build([SECTIONS[i] for i in order] + [SECTIONS[3]])
    with pytest.raises(CocoFormatError, match="duplicate|out of order|missing"):
        inrcodec.decode_array(data)
    with pytest.raises(CocoFormatError):
        inrcodec.inspect(data)


@pytest.mark.parametrize("kind", [b"HE D", b"HEA\0", b"1234", b"\xffEAD", b"HEAD"[:3] + b"\x80"])
def test_invalid_section_type(kind: bytes) -> None:
    data = build([(kind, SECTIONS[0][1]), *SECTIONS[1:]])
    with pytest.raises(CocoFormatError, match="section type"):
        inrcodec.decode_array(data)


@pytest.mark.parametrize("length", [0xFFFFFFFF, MAX_FILE_SIZE, len(SAMPLE), SPANS[b"HEAD"].payload_end])
def test_section_length_past_the_end(length: int) -> None:
    pos = SPANS[b"HEAD"].start + 4
    data = SAMPLE[:pos] + struct.pack("<I", length) + SAMPLE[pos + 4 :]
    with pytest.raises(CocoFormatError, match="past the end|CRC"):
        inrcodec.decode_array(data)


def test_file_over_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from inrcodec.format import container

    monkeypatch.setattr(container, "MAX_FILE_SIZE", len(SAMPLE) + 99)
    unpack_sections(build([*SECTIONS[:3], (b"pADs", bytes(87)), SECTIONS[3]]))
    with pytest.raises(CocoFormatError, match="limit"):
        unpack_sections(build([*SECTIONS[:3], (b"pADs", bytes(88)), SECTIONS[3]]))


@pytest.mark.parametrize("kind", [b"NETW", b"LATS"])
@pytest.mark.parametrize("payload", [b"", b"\1", b"\0\0\0", bytes(8), b"\xff" * 64, bytes(range(256))])
def test_entropy_sections_replaced(kind: bytes, payload: bytes) -> None:
    assert_valid_or_error(replace_section(SAMPLE, kind, payload))


def test_entropy_sections_swapped() -> None:
    sections = dict(SECTIONS)
    data = build([SECTIONS[0], (b"NETW", sections[b"LATS"]), (b"LATS", sections[b"NETW"]), SECTIONS[3]])
    assert_valid_or_error(data)


# --- header fields at their edges, crafted with valid CRCs ----------------------------------


def _set(**fields: object):
    def mutate(head: Head) -> None:
        for name, value in fields.items():
            setattr(head, name, value)
    return mutate


def _layer(index: int, slot: int, value: int):
    def mutate(head: Head) -> None:
        head.layers[index][slot] = value
    return mutate


def _hidden(name: str, widths: list[int]):
    def mutate(head: Head) -> None:
        setattr(head, name, widths)
    return mutate


INVALID_HEADS = {
    "width 0": _set(width=0),
    "height 0": _set(height=0),
    "width over": _set(width=MAX_IMAGE_SIDE + 1),
    "height over": _set(height=MAX_IMAGE_SIDE + 1),
    "width max u16": _set(width=0xFFFF),
    "both max u16": _set(width=0xFFFF, height=0xFFFF),
    "pixels over": _set(width=MAX_IMAGE_SIDE, height=MAX_IMAGE_PIXELS // MAX_IMAGE_SIDE + 1),
    "levels 0": _set(n_levels=0),
    "levels over": _set(n_levels=MAX_LEVELS + 1),
    "levels 255": _set(n_levels=255),
    "synth width 0": _hidden("synth", [0, 16]),
    "synth width over": _hidden("synth", [MAX_LAYER_WIDTH + 1, 16]),
    "arm width 255": _hidden("arm", [16, 255]),
    "too many layers": _hidden("synth", [16] * (MAX_HIDDEN_LAYERS + 1)),  # also leaves the descriptors short
    "fewer layers": _hidden("arm", [16]),  # descriptors left over: trailing bytes
    "weight_exp over": _layer(0, 0, MAX_WEIGHT_EXP + 1),
    "weight_exp 255": _layer(5, 0, 255),
    "bias_exp over": _layer(1, 1, 10 + ACT_FRAC_BITS + 1),  # layer 1 has weight_exp 10
    "bias_exp 255": _layer(4, 1, 255),
    "weight scale over": _layer(2, 2, SCALE_K_MAX + 1),
    "bias scale max u8": _layer(3, 3, 255 + SCALE_K_MIN),
}

VALID_EDGE_HEADS = {
    "1x1": _set(width=1, height=1),
    "1x2": _set(width=1, height=2),
    "max width": _set(width=MAX_IMAGE_SIDE, height=1),
    "max height": _set(width=1, height=MAX_IMAGE_SIDE),
    "odd": _set(width=47, height=33),
    "bigger": _set(width=97, height=61),
    "weight_exp 0, bias_exp 0": lambda h: h.layers[0].__setitem__(slice(0, 2), [0, 0]),
    "weight_exp max": _layer(2, 0, MAX_WEIGHT_EXP),
    "bias_exp max": _layer(1, 1, 10 + ACT_FRAC_BITS),
    "scales min": _layer(0, 2, SCALE_K_MIN),
    "scales max": _layer(5, 3, SCALE_K_MAX),
    "levels 1": _set(n_levels=1),
    "levels max": _set(n_levels=MAX_LEVELS),
    "no arm hidden layer": lambda h: (setattr(h, "arm", []), h.layers.__delitem__(slice(-2, None))),
    "no synth hidden layer": lambda h: (setattr(h, "synth", []), h.layers.__delitem__(slice(0, 2))),
    "widest synth": lambda h: (setattr(h, "synth", [MAX_LAYER_WIDTH] * MAX_HIDDEN_LAYERS),
                               h.layers.__setitem__(slice(0, 0), [[8, 8, 0, 0]] * 2)),
}


@pytest.mark.parametrize("name", INVALID_HEADS)
def test_header_field_out_of_range(name: str) -> None:
    head = head_of(SAMPLE)
    INVALID_HEADS[name](head)
    data = with_head(SAMPLE, head)
    with pytest.raises(CocoFormatError, match="header field|HEAD|layer descriptor"):
        inrcodec.decode_array(data)
    with pytest.raises(CocoFormatError):
        inrcodec.inspect(data)


@pytest.mark.parametrize("name", VALID_EDGE_HEADS)
def test_header_field_at_edge(name: str) -> None:
    head = head_of(SAMPLE)
    VALID_EDGE_HEADS[name](head)
    data = with_head(SAMPLE, head)
    info = inrcodec.inspect(data)  # the header itself is valid
    assert (info.width, info.height) == (head.width, head.height)
    assert_valid_or_error(data)


def test_head_too_short_or_long() -> None:
    head = dict(SECTIONS)[b"HEAD"]
    for payload in (b"", head[:4], head[:-1], head + b"\0"):
        with pytest.raises(CocoFormatError, match="HEAD"):
            inrcodec.decode_array(replace_section(SAMPLE, b"HEAD", payload))


# --- fuzzing ----------------------------------------------------------------------------------

mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(SAMPLE) - 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, len(SAMPLE) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(SAMPLE)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(SAMPLE) - 1), st.integers(1, 16)),
    st.tuples(st.just("overwrite"), st.integers(0, len(SAMPLE) - 4), st.integers(0, 2**32 - 1)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, pos, value in ops:
        pos = min(pos, len(out))
        if op == "flip" and pos < len(out):
            out[pos] ^= value
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = bytes([value])
        elif op == "delete":
            del out[pos : pos + value]
        elif op == "overwrite":
            out[pos : pos + 4] = struct.pack("<I", value)
    return bytes(out)


@settings(FUZZ, max_examples=600)
@given(st.lists(mutations, min_size=1, max_size=4))
def test_fuzz_random_mutations(original: np.ndarray, ops: list[tuple[str, int, int]]) -> None:
    assert_original_or_error(mutate(SAMPLE, ops), original)


@settings(FUZZ, max_examples=400)
@given(st.sampled_from([b"NETW", b"LATS"]), st.lists(mutations, min_size=1, max_size=3))
def test_fuzz_payloads_with_valid_crc(kind: bytes, ops: list[tuple[str, int, int]]) -> None:
    """Damage inside NETW/LATS with the CRC recomputed reaches the entropy decoder."""
    payload = mutate(dict(SECTIONS)[kind], ops)
    assert_valid_or_error(replace_section(SAMPLE, kind, payload))


def test_crc_covers_type_and_payload() -> None:
    span = SPANS[b"NETW"]
    (crc,) = struct.unpack_from("<I", SAMPLE, span.payload_end)
    assert crc == zlib.crc32(SAMPLE[span.start : span.start + 4] + SAMPLE[span.payload_start : span.payload_end])
