"""Fuzz the `.coco` decoder with structured and random damage to the committed samples.

    python -m bench.fuzz_coco --cases 5000 --seed 0 --out bench/results/fuzz-<date>
    python -m bench.fuzz_coco --seed 0 --replay 1234      # rerun one case, with its traceback

Every case is one damaged file, decoded in this process. Outcomes:
- identical: the exact original pixels (the damage hit a byte a decoder may ignore);
- format_error: CocoFormatError (inspect must agree);
- other_pixels: a file whose CRCs were recomputed decoded to other pixels of
  the size its header states (allowed only for those CRC-fixed cases);
- failure: anything else (another exception type, other pixels from a file
  with untouched CRCs, a wrong shape, or inspect disagreeing with decode).

Cases come first from a fixed list (every HEAD field at 0, 1, its limits and
past them with the CRC fixed; section lengths past the end; wrong CRCs;
unknown versions and sections; duplicates; huge dimensions), then random
flips / truncations / insertions / deletions / overwrites, a third of them
with CRCs recomputed so the damage reaches the header parser and the entropy
decoder. Files whose header states more than RENDER_PIXELS pixels have all
their latents decoded but are rendered at a reduced size.

Per case: wall time (the slowest are listed) and peak RSS above the baseline,
sampled every few milliseconds (native allocations are invisible to
tracemalloc). An address-space limit turns a runaway allocation into a
MemoryError, reported as a failure, instead of an OOM kill.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data"
SIGNATURE_AND_VERSION = 11  # the signature, then the major and minor version bytes
MAJOR_AT, MINOR_AT = SIGNATURE_AND_VERSION - 2, SIGNATURE_AND_VERSION - 1
RENDER_PIXELS = 1 << 20
SLOWEST = 10


@dataclass
class Case:
    name: str
    sample: str
    data: bytes
    crc_fixed: bool  # CRCs recomputed: other pixels are a legitimate outcome
    random: bool = False


# --- building files -----------------------------------------------------------------------


def sections(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(type, payload) pairs if the framing is walkable, else None (no other checks)."""
    pos, out = SIGNATURE_AND_VERSION, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 12 + length > len(data):
            return None
        out.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out if pos == len(data) else None


def pack(prefix: bytes, parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(k + struct.pack("<I", len(p)) + p + struct.pack("<I", zlib.crc32(k + p)) for k, p in parts)
    return prefix[:SIGNATURE_AND_VERSION] + body


def reframe(data: bytes) -> bytes | None:
    """The file with every CRC recomputed, or None when the framing no longer holds."""
    parts = sections(data)
    return None if parts is None else pack(data, parts)


def major_version(data: bytes) -> int:
    return data[MAJOR_AT]


def with_byte(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :]


def with_payload(data: bytes, kind: bytes, payload: bytes) -> bytes:
    return pack(data, [(k, payload if k == kind else p) for k, p in sections(data) or []])


# --- structured cases ---------------------------------------------------------------------


def head_field_offsets(head: bytes, major: int = 1) -> list[tuple[str, int, int]]:
    """(field name, offset, size in bytes) of every HEAD field of a version `major` file."""
    fields = [("width", 0, 2), ("height", 2, 2), ("n_levels", 4, 1)]
    pos = 5
    for part in ("synth", "arm"):
        n = head[pos]
        fields.append((f"n_{part}_hidden", pos, 1))
        fields += [(f"{part}_width[{i}]", pos + 1 + i, 1) for i in range(n)]
        pos += 1 + n
    if major >= 2:  # the context tile (2.0)
        fields += [("tile_width", pos, 1), ("tile_height", pos + 1, 1)]
        pos += 2
    if major >= 3:  # four i16 upsampling taps per step, n_levels - 1 steps (3.0)
        n_taps = 4 * (head[4] - 1)
        fields += [(f"step{i // 4}.up_tap{i % 4}", pos + 2 * i, 2) for i in range(n_taps)]
        pos += 2 * n_taps
    slots = ("weight_exp", "bias_exp", "weight_scale", "bias_scale")
    fields += [(f"layer{(off - pos) // 4}.{slots[(off - pos) % 4]}", off, 1) for off in range(pos, len(head))]
    return fields


def edge_values(name: str, size: int) -> list[int]:
    """Values to write into a HEAD field (unsigned, little-endian): 0, 1, its limits, past them, all ones."""
    if "up_tap" in name:  # i16, every value is valid: zero, +-1, the extremes
        return [0, 1, 0x7FFF, 0x8000, 0xFFFF]
    if size == 2:  # width / height: limits 1..8192
        return [0, 1, 2, 8191, 8192, 8193, 0xFFFF]
    if name.startswith("tile_"):  # 2..128
        return [0, 1, 2, 128, 129, 255]
    limits = {"n_levels": 8, "n_synth_hidden": 4, "n_arm_hidden": 4, "weight_exp": 16, "bias_exp": 28,
              "weight_scale": 159, "bias_scale": 159}
    top = next((v for k, v in limits.items() if name.endswith(k)), 64)  # hidden widths: 1..64
    return sorted({0, 1, top, top + 1, 255})


def structured(name: str, data: bytes) -> Iterator[Case]:
    parts = sections(data)
    assert parts is not None
    head = dict(parts)[b"HEAD"]
    major = major_version(data)
    for field, off, size in head_field_offsets(head, major):
        for value in edge_values(field, size):
            new = bytearray(head)
            new[off : off + size] = value.to_bytes(size, "little")
            yield Case(f"HEAD {field}={value}", name, with_payload(data, b"HEAD", bytes(new)), True)
    for w, h in [(8192, 4096), (4096, 8192), (2048, 2048), (8192, 1), (1, 8192), (5793, 5792), (1, 1)]:
        new = struct.pack("<HH", w, h) + head[4:]
        yield Case(f"HEAD size {w}x{h}", name, with_payload(data, b"HEAD", new), True)
    if name == "gradient-48x32.coco":
        # Without the decoder's information check, an empty LATS decodes (to
        # garbage) and every latent of the stated size gets visited: these
        # cases time that check at the limits.
        for w, h in [(2048, 2048), (8192, 4096)]:
            new = struct.pack("<HH", w, h) + head[4:]
            yield Case(f"HEAD size {w}x{h}, empty LATS", name,
                       with_payload(with_payload(data, b"HEAD", new), b"LATS", b""), True)
    pos = SIGNATURE_AND_VERSION
    for kind, payload in parts:
        for length in (0, len(payload) - 1, len(payload) + 1, len(data), 0xFFFFFFFF):
            if length >= 0:
                bad = data[: pos + 4] + struct.pack("<I", length) + data[pos + 8 :]
                yield Case(f"{kind.decode()} length={length}", name, bad, False)
        crc_at = pos + 8 + len(payload)
        yield Case(f"{kind.decode()} wrong CRC", name, data[:crc_at] + bytes(4 - i for i in range(4))
                   + data[crc_at + 4 :], False)
        pos = crc_at + 4
    for other in sorted({0, 1, 2, 3, 4, 255} - {major}):
        yield Case(f"major version {other}", name, with_byte(data, MAJOR_AT, other), False)
    for minor in (1, 128, 255):
        yield Case(f"minor version {minor}", name, with_byte(data, MINOR_AT, minor), False)
    for where in range(len(parts)):
        for kind in (b"ABCD", b"tEXt", b"HEAD", b"LATS", b"CEND"):
            yield Case(f"insert {kind.decode()} at {where}", name,
                       pack(data, parts[:where] + [(kind, b"x" * 5)] + parts[where:]), True)
    for where in range(len(parts)):
        yield Case(f"drop section {where}", name, pack(data, parts[:where] + parts[where + 1 :]), True)
    yield Case("sections reversed", name, pack(data, parts[-2::-1] + parts[-1:]), True)
    for tail in (b"\0", bytes(12), parts[-1][0] + bytes(8)):
        yield Case(f"trailing {len(tail)} bytes", name, data + tail, False)
    for kind in (b"NETW", b"LATS"):
        payload = dict(parts)[kind]
        for label, new in [("empty", b""), ("1 byte", b"\1"), ("half", payload[: len(payload) // 8 * 4]),
                           ("zeros", bytes(len(payload))), ("ones", b"\xff" * len(payload)),
                           ("doubled", payload * 2), ("other section", dict(parts)[b"NETW" if kind == b"LATS" else b"LATS"])]:
            yield Case(f"{kind.decode()} {label}", name, with_payload(data, kind, new), True)


# --- random cases -------------------------------------------------------------------------


def random_case(rng: np.random.Generator, samples: dict[str, bytes]) -> Case:
    name = str(rng.choice(sorted(samples)))
    data = bytearray(samples[name])
    ops = []
    for _ in range(int(rng.integers(1, 5))):
        op = str(rng.choice(["flip", "flip", "set", "truncate", "insert", "delete", "overwrite32"]))
        pos = int(rng.integers(0, len(data) + 1))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        elif op == "set" and pos < len(data):
            data[pos] = int(rng.integers(0, 256))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == "delete":
            del data[pos : pos + int(rng.integers(1, 9))]
        elif op == "overwrite32":
            data[pos : pos + 4] = struct.pack("<I", int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF,
                                                                    int(rng.integers(0, 2**32))])))
        ops.append(f"{op}@{pos}")
    fixed = reframe(bytes(data)) if rng.random() < 1 / 3 else None
    if fixed is None:
        return Case(" ".join(ops), name, bytes(data), False, random=True)
    return Case(" ".join(ops) + " +crc", name, fixed, True, random=True)


def all_cases(n: int, seed: int, samples: dict[str, bytes]) -> Iterator[tuple[int, Case]]:
    index = 0
    for name, data in samples.items():
        for case in structured(name, data):
            if index >= n:
                return
            yield index, case
            index += 1
    while index < n:
        yield index, random_case(np.random.default_rng([seed, index]), samples)
        index += 1


# --- running ------------------------------------------------------------------------------


class PeakRss:
    """Peak resident set size between start() and stop(), sampled by a thread."""

    def __init__(self, interval: float = 0.003) -> None:
        self.interval, self.peak, self.running = interval, 0, False
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _loop(self) -> None:
        while True:
            if self.running:
                self.peak = max(self.peak, self.now())
            time.sleep(self.interval)

    def start(self) -> int:
        self.peak, self.running = self.now(), True
        return self.peak

    def stop(self) -> int:
        self.running = False
        return max(self.peak, self.now())


def run_case(case: Case, originals: dict[str, np.ndarray]) -> tuple[str, str]:
    """(outcome, detail) of one case."""
    import inrcodec
    from inrcodec import CocoFormatError

    try:
        try:
            info = inrcodec.inspect(case.data)
        except CocoFormatError as exc:
            try:
                inrcodec.decode_array(case.data, size="1x1")
            except CocoFormatError:
                return "format_error", str(exc)
            return "failure", "inspect refused a file that decode accepted"
        scale = None
        if info.width * info.height > RENDER_PIXELS:
            scale = (RENDER_PIXELS / (info.width * info.height)) ** 0.5
        try:
            pixels = inrcodec.decode_array(case.data, scale=scale)
        except CocoFormatError as exc:
            return "format_error", f"entropy-coded data: {exc}"
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classifying is the point
        return "failure", f"{type(exc).__name__}: {exc}"
    original = originals[case.sample]
    if pixels.shape == original.shape and np.array_equal(pixels, original):
        return "identical", ""
    if not case.crc_fixed:
        return "failure", "other pixels from a file whose CRCs were not recomputed"
    if scale is None and pixels.shape != (info.height, info.width, 3):
        return "failure", f"shape {pixels.shape} but header says {info.width}x{info.height}"
    return "other_pixels", f"{pixels.shape[1]}x{pixels.shape[0]}"


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": version("numpy"), "constriction": version("constriction"), "inrcodec": version("inrcodec")}


def fuzz(n: int, seed: int, log: Callable[[str], None] = print) -> dict[str, object]:
    import inrcodec

    samples = {p.name: p.read_bytes() for p in sorted(SAMPLES.glob("*.coco"))}
    originals = {name: inrcodec.decode_array(data) for name, data in samples.items()}
    rss = PeakRss()
    outcomes: dict[str, Counter[str]] = {"structured": Counter(), "random": Counter()}
    seconds_by_kind: Counter[str] = Counter()
    timings, failures, peak = [], [], (0, -1, "")
    start = time.monotonic()
    for index, case in all_cases(n, seed, samples):
        base = rss.start()
        t0 = time.perf_counter()
        outcome, detail = run_case(case, originals)
        seconds = time.perf_counter() - t0
        grown = rss.stop() - base
        kind = "random" if case.random else "structured"
        outcomes[kind][outcome] += 1
        seconds_by_kind[kind] += seconds
        timings.append((seconds, index, case.sample, case.name))
        if grown > peak[0]:
            peak = (grown, index, f"{case.sample}: {case.name}")
        if outcome == "failure":
            failures.append({"index": index, "sample": case.sample, "case": case.name, "detail": detail})
        if (index + 1) % 500 == 0:
            log(f"{index + 1} cases, {time.monotonic() - start:.0f} s, {dict(outcomes['structured'] + outcomes['random'])}")
    timings.sort(reverse=True)
    total = outcomes["structured"] + outcomes["random"]
    return {
        "cases": sum(total.values()), "seed": seed, "seconds": round(time.monotonic() - start, 1),
        "cpu_seconds": round(time.process_time(), 1), "outcomes": dict(total), "failures": failures,
        "by_kind": {kind: {"cases": sum(c.values()), "seconds": round(seconds_by_kind[kind], 1), "outcomes": dict(c)}
                    for kind, c in outcomes.items()},
        "slowest": [{"seconds": round(s, 3), "index": i, "sample": smp, "case": c} for s, i, smp, c in timings[:SLOWEST]],
        "median_case_ms": round(1000 * float(np.median([t[0] for t in timings])), 2),
        "peak_rss_growth_mib": round(peak[0] / 2**20, 1), "peak_rss_case": {"index": peak[1], "case": peak[2]},
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "samples": sorted(samples), "machine": machine(), "date": dt.date.today().isoformat(),
    }


def write_readme(summary: dict, path: Path) -> None:
    m = summary["machine"]
    slow = "\n".join(f"| {s['seconds']} | {s['index']} | {s['sample']} | {s['case']} |" for s in summary["slowest"])
    fails = "\n".join(f"- case {f['index']} ({f['sample']}: {f['case']}): {f['detail']}" for f in summary["failures"])
    path.write_text(f"""# `.coco` decoder fuzz run, {summary['date']}

`python -m bench.fuzz_coco --cases {summary['cases']} --seed {summary['seed']}` over {', '.join(summary['samples'])}
(see the module docstring for the case list and the outcome rules).

- cases: {summary['cases']}, wall {summary['seconds']} s, CPU {summary['cpu_seconds']} s, median case {summary['median_case_ms']} ms
- outcomes: {json.dumps(summary['outcomes'])}
- structured cases: {json.dumps(summary['by_kind']['structured'])}
- random cases: {json.dumps(summary['by_kind']['random'])}
- failures: {len(summary['failures'])}
- peak RSS growth in one case: {summary['peak_rss_growth_mib']} MiB (case {summary['peak_rss_case']['index']}, {summary['peak_rss_case']['case']}); process max RSS {summary['max_rss_mib']} MiB
- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, numpy {m['numpy']}, constriction {m['constriction']}, inrcodec {m['inrcodec']}

## Slowest cases

| seconds | index | sample | case |
|---|---|---|---|
{slow}

## Failures

{fails or "None."}
""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_coco", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000, help="number of cases (structured ones first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="result folder (default bench/results/fuzz-<date>)")
    parser.add_argument("--memory-limit-gb", type=float, default=6.0, help="address-space limit of this process")
    parser.add_argument("--replay", type=int, default=None, help="run only case INDEX and show its traceback")
    args = parser.parse_args(argv)
    limit = int(args.memory_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.replay is not None:
        return replay(args.replay, args.seed)
    out = args.out or Path(__file__).resolve().parent / "results" / f"fuzz-{dt.date.today().isoformat()}"
    summary = fuzz(args.cases, args.seed, log=lambda s: print(s, file=sys.stderr, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_readme(summary, out / "README.md")
    print(f"{summary['cases']} cases in {summary['seconds']} s: {summary['outcomes']}; written to {out}")
    return 1 if summary["failures"] else 0


def replay(index: int, seed: int) -> int:
    import inrcodec

    samples = {p.name: p.read_bytes() for p in sorted(SAMPLES.glob("*.coco"))}
    case = next(c for i, c in all_cases(index + 1, seed, samples) if i == index)
    print(f"case {index}: {case.sample}: {case.name} ({len(case.data)} bytes)")
    try:
        inrcodec.decode_array(case.data)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
    originals = {case.sample: inrcodec.decode_array(samples[case.sample])}
    print(run_case(case, originals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
