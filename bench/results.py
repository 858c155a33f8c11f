"""The long-form results table ``rd.csv``: one row per (codec, setting, image), appended as rows finish.

Also the run log ``runs.jsonl`` (one JSON object per ``rd`` invocation), so that reports can quote the
command lines that produced a results folder.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

RD_CSV = "rd.csv"
RUNS_LOG = "runs.jsonl"

COLUMNS = (
    "codec",  # codec name, see bench.codecs.CODECS
    "codec_version",  # library versions that produced the file
    "setting",  # bench.codecs.setting_key, e.g. "quality=75" or "bpp=0.5;effort=default"
    "image",  # file name of the source image
    "width",
    "height",
    "bytes",  # size of the whole file
    "bpp",  # bytes * 8 / (width * height)
    "psnr",  # dB, 8-bit RGB, MSE over all pixels and channels
    "msssim",  # RGB, 0..1; NaN for images below 161 px on the short side
    "msssim_db",  # -10 log10(1 - msssim)
    "encode_s",  # wall-clock seconds
    "decode_s",
    "encode_peak_mb",  # peak RSS increase during the call, MB (see bench.metrics.measure)
    "decode_peak_mb",
    "torch_threads",  # intra-op threads torch had (1 in --jobs > 1 workers)
    "machine",
    "date",  # UTC, ISO 8601, when the row finished
)
NUMERIC = frozenset(COLUMNS[COLUMNS.index("width") : COLUMNS.index("torch_threads") + 1])
RowKey = tuple[str, str, str]


def row_key(row: dict[str, Any]) -> RowKey:
    """Identity of a row for resuming: (codec, setting, image)."""
    return (row["codec"], row["setting"], row["image"])


def env_with_tree(tree: Path | None) -> dict[str, str]:
    """This process's environment with source checkout `tree` first on PYTHONPATH (None: unchanged)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def encode_args(image: Path, out: Path, args: list[str]) -> list[str]:
    """Arguments for `python` that run `inrcodec encode IMAGE OUT ARGS --quiet`, to start in an empty folder.

    `python -m` puts the working folder first on sys.path, which would
    shadow a tree's checkout: the children start in a temporary folder.
    """
    return ["-m", "inrcodec", "encode", str(image.resolve()), str(out), *args, "--quiet"]


def timed_child(args: list[str], tree: Path | None, cwd: Path, what: str) -> tuple[float, float]:
    """Run `python ARGS` as a child in `cwd` with checkout `tree` first on its path: (wall seconds, its peak RSS MiB).

    `cwd` should be an empty folder: `python -m` puts the working folder
    first on sys.path, which would shadow the tree's checkout. The RSS is
    the child's own (os.wait4), unlike RUSAGE_CHILDREN's running maximum.
    Exits naming `what` if the child fails.
    """
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], env=env_with_tree(tree), cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{what} failed ({code}): {stderr.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> str:
    """A one-line description of this machine: OS, architecture, CPU model and logical CPU count.

    The CPU family and model numbers follow the name where /proc/cpuinfo has
    them: a virtual machine may name its CPU only "AMD EPYC", and on
    2026-12-02 two such machines ran the same `--effort fast` encodes about
    3x apart (bench/results/kodak-fast-family26-2026-12-02).
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""  # not Linux: platform.processor() is the best there is
    return f"{platform.system()} {platform.machine()}; {cpu_name(cpuinfo)}; {os.cpu_count()} CPUs"


def cpu_name(cpuinfo: str) -> str:
    """The first CPU's name in /proc/cpuinfo text, with its family and model numbers if given."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _format(value: Any) -> str:
    # Eight significant digits keep bpp and PSNR exact enough for BD integrals, and the CSV readable.
    return f"{value:.8g}" if isinstance(value, float) else str(value)


def _parse(row: dict[str, str]) -> dict[str, Any]:
    return {k: (float(v) if k in NUMERIC else v) for k, v in row.items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV file with a header line, as strings."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of an ``rd.csv``, numeric columns as floats; an empty list if it doesn't exist."""
    return [_parse(row) for row in read_csv(path)] if path.exists() else []


def write_fresh_rd(folder: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write `rows` to ``folder/rd.csv`` as a fresh table (an old one is replaced, not appended to); returns its path.

    For sweeps put together from others (`bench.max_of`, `bench.merge_runs`).
    """
    path = folder / RD_CSV
    path.unlink(missing_ok=True)
    with RowWriter(path) as writer:
        for row in rows:
            writer.write(row)
    return path


class RowWriter:
    """Appends rows to ``rd.csv``, flushing after each so that a crash loses no finished row."""

    def __init__(self, path: Path) -> None:
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with path.open(newline="") as f:
                header = tuple(next(csv.reader(f), ()))
            if header != COLUMNS:
                msg = f"{path} has columns {header}, expected {COLUMNS}; write to a new folder"
                raise ValueError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (keys: `COLUMNS`) and flush it to the OS."""
        self._writer.writerow({k: _format(row[k]) for k in COLUMNS})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_csv_row(path: Path, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    """Append one row to a small resumable CSV, writing the header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def append_run(out: Path, run: dict[str, Any]) -> None:
    """Append one invocation's record (command line, times, counts) to ``runs.jsonl``."""
    with (out / RUNS_LOG).open("a") as f:
        f.write(json.dumps(run) + "\n")


def read_runs(out: Path) -> list[dict[str, Any]]:
    """All records of ``runs.jsonl``, oldest first; empty if there is none."""
    path = out / RUNS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def coco_name(image: Path, effort: str, bpp: float) -> str:
    """The name an encoded inrcodec file is kept under (`bench rd --keep-cocos`, `bench.decode_speed --keep-cocos`).

    `bench.decode_speed --cocos` reads a folder of such files back (`kept_cocos`).
    """
    return f"{image.name}-{effort}-{bpp}.coco"
