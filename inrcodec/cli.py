"""The `inrcodec` command line: encode, decode, info, demo.

Commands only parse options and call the API. Every error of ours becomes a
one-line message on stderr and exit status 2; Ctrl-C exits with 130. Outputs
are written atomically, so a failure never leaves a partial file behind.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import InrcodecError, UsageError
from .format.container import MAX_FILE_SIZE

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_BPP = 0.5


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def friendly_errors(fn: F) -> F:
    """Turn our exceptions into `error: ...` + exit 2, Ctrl-C into exit 130.

    SIGTERM (`kill`, `timeout`) becomes SystemExit(143) while the command runs,
    so the same clean-up as for Ctrl-C runs (no temporary file left behind).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except InrcodecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; no output written", err=True)
            sys.exit(130)
        except MemoryError:
            click.echo("error: out of memory", err=True)
            sys.exit(2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def read_coco_file(path: Path) -> bytes:
    """Read a `.coco` file, refusing directories and absurdly large files.

    At most MAX_FILE_SIZE + 1 bytes are read, so a pipe or a device such as
    /dev/zero (whose stat size says nothing) cannot exhaust memory.
    """
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            raise UsageError(f"{path} is {size} bytes, over the {MAX_FILE_SIZE}-byte .coco limit")
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_SIZE:
        raise UsageError(f"{path} is over the {MAX_FILE_SIZE}-byte .coco limit")
    return data


class ProgressBar:
    """tqdm bar on stderr fed by the encoder's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, it: int, total: int, stats: dict[str, float]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or it == 1:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, unit="it", file=sys.stderr, dynamic_ncols=True, leave=False)
        self.bar.total = total
        if "candidate" in stats:  # --effort max: which of its encodes this is
            self.bar.set_description(f"encode {stats['candidate']:.0f}/{stats['candidates']:.0f}", refresh=False)
        self.bar.update(it - self.bar.n)
        self.bar.set_postfix(psnr=f"{stats['psnr']:.2f}", bpp=f"{stats['bpp']:.3f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group()
@click.version_option(__version__, prog_name="inrcodec")
def main() -> None:
    """inrcodec: an overfitted neural image codec (.coco files)."""


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path), required=False)
@click.option("--bpp", type=float, default=None, help="Target bits per pixel of the whole file (default 0.5).")
@click.option("--lmbda", type=float, default=None, help="Fixed rate-distortion lambda instead of a target rate.")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--time-limit", type=float, default=None,
              help="Stop training early to finish within SECONDS (inf: no limit, the default).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@friendly_errors
def encode(source: Path, output: Path | None, bpp: float | None, lmbda: float | None, effort: str,
           device: str, seed: int, time_limit: float | None, quiet: bool, as_json: bool) -> None:
    """Encode SOURCE (PNG, JPEG, ...) into OUTPUT (default: SOURCE with .coco)."""
    from .api import encode_with_report
    from .imageio import atomic_output, check_output_path

    if bpp is not None and lmbda is not None:
        raise UsageError("give --bpp or --lmbda, not both")
    if lmbda is None and bpp is None:
        bpp = DEFAULT_BPP
    output = output or source.with_suffix(".coco")
    check_output_path(output, source)
    bar = ProgressBar(not quiet and not as_json)
    try:
        result, notes = encode_with_report(source, bpp=bpp, lmbda=lmbda, effort=effort,  # type: ignore[arg-type]
                                           device=device, seed=seed, time_limit=time_limit, progress=bar)
    finally:
        bar.close()
    with atomic_output(output) as fh:
        fh.write(result.data)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    summary = {
        "output": str(output), "bytes": len(result.data), "width": result.width, "height": result.height,
        "bpp": result.bpp, "target_bpp": bpp, "psnr_db": result.psnr,
        "seconds": result.seconds, "iterations": result.iterations, "lambda": result.lmbda,
        "effort": effort,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{output}: {len(result.data)} bytes, {result.bpp:.4f} bpp, PSNR {result.psnr:.2f} dB, "
                   f"{result.seconds:.1f} s")


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output PNG (default: SOURCE with .png).")
@click.option("--size", default=None, help="Output size WxH, Wx or xH (aspect kept when one is missing).")
@click.option("--scale", type=float, default=None, help="Output size as a multiple of the encoded size.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True,
              help="Accepted for compatibility: decoding runs on the CPU (exact integers, same pixels anywhere).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse files whose encoded image has more pixels (decoding time grows with it).")
@friendly_errors
def decode(source: Path, output: Path | None, size: str | None, scale: float | None, device: str,
           max_pixels: int | None) -> None:
    """Decode a .coco file to PNG, at the encoded size or any other."""
    from .api import decode_array
    from .imageio import check_output_path, save_png

    output = output or source.with_suffix(".png")
    check_output_path(output, source)
    data = read_coco_file(source)
    start = time.monotonic()
    pixels = decode_array(data, size=size, scale=scale, device=device, max_pixels=max_pixels)
    save_png(pixels, output)
    click.echo(f"{output}: {pixels.shape[1]}x{pixels.shape[0]}, {time.monotonic() - start:.2f} s")


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
@friendly_errors
def info(source: Path, as_json: bool) -> None:
    """Show the header fields and section sizes of a .coco file."""
    from .api import inspect

    meta = inspect(read_coco_file(source))
    rows = [("format version", f"{meta.version[0]}.{meta.version[1]}"), *meta.fields,
            ("file size", f"{meta.file_bytes} bytes"), ("rate", f"{meta.bpp:.4f} bpp")]
    rows += [(f"section {name}", f"{n} bytes") for name, n in meta.section_sizes.items()]
    if as_json:
        click.echo(json.dumps(dict(rows)))
        return
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@main.command()
@click.option("--image", type=click.Path(path_type=Path), default=None, help="Image to use (default: the shipped sample).")
@click.option("--bpp", type=float, default=0.5, show_default=True)
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@friendly_errors
def demo(image: Path | None, bpp: float, effort: str, out_dir: Path) -> None:
    """Encode the sample image, decode it at native size and 2048x2048, print numbers."""
    from .demo import run_demo

    run_demo(image, bpp, effort, out_dir, echo=click.echo)


if __name__ == "__main__":
    main()
