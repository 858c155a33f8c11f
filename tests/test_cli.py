"""The `inrcodec` command line through click's CliRunner, plus real processes for exit codes and signals.

Every failure must be exit status 2 with one `error: ...` line on stderr, no
traceback, and no new file in the output folder (temporaries included); an
existing output file must survive untouched.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helper import DATA, listing, synthetic_image
from PIL import Image

from inrcodec.cli import main

SAMPLE = DATA / "gradient-48x32.coco"
PRECIOUS = b"an existing file that must survive"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


def assert_error(result: Result, match: str = "") -> None:
    """Exit 2, exactly one line on stderr starting with 'error:', nothing on stdout."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match.lower() in lines[0].lower()
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding tiny.png (48x32), sample.coco and an existing out.png."""
    Image.fromarray(synthetic_image(48, 32)).save(tmp_path / "tiny.png")
    shutil.copy(SAMPLE, tmp_path / "sample.coco")
    (tmp_path / "out.png").write_bytes(PRECIOUS)
    return tmp_path


# --- happy paths ----------------------------------------------------------------------------


def test_help_and_version() -> None:
    for args in (["--help"], ["encode", "--help"], ["decode", "--help"], ["info", "--help"], ["demo", "--help"]):
        assert_ok(run(*args))
    result = run("--version")
    assert_ok(result)
    assert "inrcodec" in result.stdout


def test_encode_default_output_name(folder: Path, fast_encoder: None) -> None:
    result = run("encode", folder / "tiny.png", "--bpp", "3", "--device", "cpu", "--quiet")
    assert_ok(result)
    data = (folder / "tiny.coco").read_bytes()
    assert data.startswith(b"\x89COCO")
    assert f"{folder / 'tiny.coco'}: {len(data)} bytes" in result.stdout
    # Eight steps and no refits cannot land the rate, and the user is told so.
    assert result.stderr.startswith("note: the file is ") and "from the requested 3" in result.stderr


def test_encode_json(folder: Path, fast_encoder: None) -> None:
    result = run("encode", folder / "tiny.png", folder / "x.coco", "--lmbda", "0.001", "--device", "cpu", "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    assert summary["bytes"] == (folder / "x.coco").stat().st_size
    assert (summary["width"], summary["height"]) == (48, 32)
    assert summary["lambda"] == pytest.approx(0.001)
    assert summary["target_bpp"] is None and summary["iterations"] == 8
    assert set(summary) >= {"output", "bpp", "psnr_db", "seconds", "effort"}


def test_encode_without_a_time_limit(folder: Path, fast_encoder: None) -> None:
    # The CLI passes `--time-limit inf` through as no limit. The OverflowError it used to raise
    # needs a fit long enough to measure its pace: test_an_infinite_time_limit_is_an_untimed_encode.
    result = run("encode", folder / "tiny.png", folder / "x.coco", "--lmbda", "0.001", "--device", "cpu",
                 "--time-limit", "inf", "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["bytes"] == (folder / "x.coco").stat().st_size


def test_encode_reports_input_notes(folder: Path, fast_encoder: None) -> None:
    rgba = np.dstack([synthetic_image(16, 8), np.full((8, 16), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    result = run("encode", folder / "rgba.png", "--bpp", "8", "--device", "cpu", "--quiet")
    assert_ok(result)
    assert "note: fully opaque alpha channel dropped" in result.stderr


@pytest.mark.parametrize(("options", "size"), [
    ([], (48, 32)), (["--size", "97x61"], (97, 61)), (["--size", "x16"], (24, 16)), (["--scale", "0.5"], (24, 16)),
])
def test_decode(folder: Path, options: list[str], size: tuple[int, int]) -> None:
    result = run("decode", folder / "sample.coco", *options)
    assert_ok(result)
    with Image.open(folder / "sample.png") as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == size
    assert result.stdout.startswith(f"{folder / 'sample.png'}: {size[0]}x{size[1]}")


def test_decode_max_pixels(folder: Path) -> None:
    assert_ok(run("decode", folder / "sample.coco", "--max-pixels", str(48 * 32)))
    (folder / "sample.png").unlink()
    assert_error(run("decode", folder / "sample.coco", "--max-pixels", str(48 * 32 - 1)), "over the limit of 1535 pixels")
    assert listing(folder) == ["out.png", "sample.coco", "tiny.png"]


def test_decode_overwrites_existing_output(folder: Path) -> None:
    assert_ok(run("decode", folder / "sample.coco", "-o", folder / "out.png"))
    with Image.open(folder / "out.png") as im:
        assert im.size == (48, 32)
    assert listing(folder) == ["out.png", "sample.coco", "tiny.png"]
    assert (folder / "out.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_info(folder: Path) -> None:
    result = run("info", folder / "sample.coco")
    assert_ok(result)
    assert "format version" in result.stdout and "48 x 32" in result.stdout
    fields = json.loads(run("info", folder / "sample.coco", "--json").stdout)
    assert fields["format version"] == "1.0"
    assert fields["width x height"] == "48 x 32"
    assert fields["file size"] == f"{SAMPLE.stat().st_size} bytes"


def test_demo(folder: Path, fast_encoder: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import inrcodec.api

    calls = []
    real = inrcodec.api.decode_array

    def small_decode(data: bytes, size: str | None = None, **kwargs: object):
        calls.append(size)
        return real(data, size="64x64" if size == "2048x2048" else size)  # the 2048x2048 step, cheaply

    monkeypatch.setattr("inrcodec.demo.decode_array", small_decode)
    result = run("demo", "--image", folder / "tiny.png", "--bpp", "4", "--out", folder / "demo")
    assert_ok(result)
    assert calls == [None, "2048x2048"]
    assert "PSNR" in result.stdout
    assert listing(folder / "demo") == ["tiny-2048x2048.png", "tiny.coco", "tiny.png"]


# --- errors -----------------------------------------------------------------------------------


def corrupt_inputs(folder: Path) -> None:
    (folder / "text.png").write_text("not an image at all\n")
    (folder / "empty.png").write_bytes(b"")
    png = (folder / "tiny.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "text.coco").write_text("hello")
    (folder / "empty.coco").write_bytes(b"")
    (folder / "truncated.coco").write_bytes(SAMPLE.read_bytes()[:-5])
    (folder / "sub").mkdir()


ENCODE_ERRORS = [
    (["missing.png"], "no such file"),
    (["text.png"], "not a readable image"),
    (["empty.png"], "not a readable image"),
    (["truncated.png"], "truncated"),
    (["sub"], "directory"),
    (["tiny.png", "sub"], "directory"),
    (["tiny.png", "tiny.png"], "overwrite the input"),
    (["tiny.png", "nowhere/x.coco"], "does not exist"),
    (["tiny.png", "--bpp", "0"], "outside"),
    (["tiny.png", "--bpp", "100"], "outside"),
    (["tiny.png", "--bpp", "nan"], "outside"),
    (["tiny.png", "--lmbda", "0"], "lambda"),
    (["tiny.png", "--bpp", "1", "--lmbda", "0.01"], "not both"),
    (["tiny.png", "--time-limit", "0"], "time limit"),
    (["tiny.png", "--time-limit", "nan"], "time limit"),
]

DECODE_ERRORS = [
    (["missing.coco"], "cannot read"),
    (["sub"], "directory"),
    (["text.coco"], "signature"),
    (["empty.coco"], "signature"),
    (["truncated.coco"], "truncated"),
    (["tiny.png", "-o", "x.png"], "signature"),
    (["sample.coco", "-o", "sub"], "directory"),
    (["sample.coco", "-o", "sample.coco"], "overwrite the input"),
    (["sample.coco", "-o", "nowhere/x.png"], "does not exist"),
    (["sample.coco", "--size", "0x0"], "outside"),
    (["sample.coco", "--size", "axb"], "not WxH"),
    (["sample.coco", "--size", "99999999x2"], "outside"),
    (["sample.coco", "--size", "9" * 5000], "not WxH"),
    (["sample.coco", "--size", "8193x8193"], "over the limit"),
    (["sample.coco", "--size", "65537x"], "outside"),
    (["sample.coco", "--scale", "1e300"], "outside"),
    (["sample.coco", "--scale", "-1"], "positive"),
    (["sample.coco", "--scale", "inf"], "positive"),
    (["sample.coco", "--size", "9x9", "--scale", "2"], "not both"),
]

INFO_ERRORS = [(["missing.coco"], "cannot read"), (["truncated.coco"], "truncated"), (["text.coco"], "signature"),
               (["sub"], "directory")]


@pytest.mark.parametrize(("command", "args", "match"),
                         [("encode", a, m) for a, m in ENCODE_ERRORS] + [("decode", a, m) for a, m in DECODE_ERRORS]
                         + [("info", a, m) for a, m in INFO_ERRORS])
def test_errors(folder: Path, command: str, args: list[str], match: str, fast_encoder: None,
                monkeypatch: pytest.MonkeyPatch) -> None:
    corrupt_inputs(folder)
    monkeypatch.chdir(folder)
    before = listing(folder)
    assert_error(run(command, *args, "--device", "cpu") if command != "info" else run(command, *args), match)
    assert listing(folder) == before  # no partial output, no temporary left behind
    assert (folder / "out.png").read_bytes() == PRECIOUS


def test_error_keeps_existing_output(folder: Path) -> None:
    (folder / "bad.coco").write_bytes(SAMPLE.read_bytes()[:100])
    assert_error(run("decode", folder / "bad.coco", "-o", folder / "out.png"))
    assert_error(run("decode", folder / "sample.coco", "-o", folder / "out.png", "--size", "0x5"))
    assert (folder / "out.png").read_bytes() == PRECIOUS


def test_endless_input_stops_at_the_file_size_limit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/zero has stat size 0 and never ends: reading stops past the limit."""
    monkeypatch.setattr("inrcodec.cli.MAX_FILE_SIZE", 1000)
    assert_error(run("info", "/dev/zero"), "over the 1000-byte")
    assert_error(run("decode", "/dev/zero", "-o", folder / "z.png"), "over the 1000-byte")


def test_output_special_file_refused(folder: Path) -> None:
    os.mkfifo(folder / "fifo.png")
    assert_error(run("decode", folder / "sample.coco", "-o", folder / "fifo.png"), "not a regular file")


def test_unwritable_output_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing write (permissions, full disk) is an error line, not a traceback."""
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert_error(run("decode", folder / "sample.coco", "-o", folder / "out.png"), "permission denied")
    assert (folder / "out.png").read_bytes() == PRECIOUS


def test_write_failure_midway_leaves_nothing(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    before = listing(folder)
    assert_error(run("decode", folder / "sample.coco", "-o", folder / "out.png"), "no space left")
    assert listing(folder) == before
    assert (folder / "out.png").read_bytes() == PRECIOUS


def test_click_usage_errors_exit_2(folder: Path) -> None:
    for args in (["decode"], ["encode", folder / "tiny.png", "--effort", "warp"], ["decode", SAMPLE, "--scale", "x"],
                 ["frobnicate"]):
        result = run(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output


# --- real processes -------------------------------------------------------------------------


def test_subprocess_exit_codes(folder: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "inrcodec", "info", "--json", str(SAMPLE)],
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0 and json.loads(ok.stdout)["width x height"] == "48 x 32"
    bad = subprocess.run([sys.executable, "-m", "inrcodec", "decode", str(SAMPLE), "-o", str(folder / "x.png"),
                          "--size", "0x0"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
    assert not (folder / "x.png").exists()


# The child answers Ctrl-C as an interactive command does even when the
# suite itself was started in the background, where the shell hands every
# process SIGINT ignored (`(nohup bash -c '.ci/run' &)` failed these tests).
CHILD = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import inrcodec.api, inrcodec.cli, inrcodec.imageio  # the slow imports, before "ready"
    print("ready", flush=True)
    inrcodec.cli.main(sys.argv[1:])
""")


def interrupt_child(args: list[str], after: float, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    """Run the CLI in a child, send `sig` `after` seconds into the command; (exit status, stderr)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready and child.stdout.readline().strip() == "ready"
        time.sleep(after)
        assert child.poll() is None
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, stderr


@pytest.mark.parametrize(("sig", "code", "message"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "")])
def test_interrupted_decode_leaves_no_file(folder: Path, sig: signal.Signals, code: int, message: str) -> None:
    """Stop a long decode (8192x8192 output) mid-way: nothing new in the folder, the old output intact."""
    before = listing(folder)
    # 1 s: inside the command now; rendering 64 Mpx takes far longer
    returncode, stderr = interrupt_child(["decode", str(folder / "sample.coco"), "-o", str(folder / "out.png"),
                                          "--size", "8192x8192"], after=1.0, sig=sig)
    assert returncode == code, stderr
    assert message in stderr and "Traceback" not in stderr
    assert listing(folder) == before
    assert (folder / "out.png").read_bytes() == PRECIOUS


@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_encode_leaves_no_file(folder: Path, existing: bool) -> None:
    """Ctrl-C while fitting: no .coco (not even a temporary), an existing output untouched."""
    target = folder / "tiny.coco"
    if existing:
        target.write_bytes(PRECIOUS)
    before = listing(folder)
    # 1.5 s: fitting now; max effort on 48x32 runs for well over a minute
    returncode, stderr = interrupt_child(["encode", str(folder / "tiny.png"), str(target), "--effort", "max",
                                          "--device", "cpu", "--quiet"], after=1.5)
    assert returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert listing(folder) == before
    if existing:
        assert target.read_bytes() == PRECIOUS


def test_a_rate_the_network_alone_exceeds_is_explained(folder: Path) -> None:
    # 48x32 pixels: the network's ~1 KB is several bits per pixel by itself.
    result = run("encode", folder / "tiny.png", "--bpp", "0.5", "--effort", "fast", "--device", "cpu", "--quiet")
    assert_ok(result)
    assert "the network and header alone take" in result.stderr


def test_the_progress_bar_names_max_s_encode() -> None:
    from inrcodec.cli import ProgressBar

    bar = ProgressBar(True)
    bar(1, 10, {"psnr": 20.0, "bpp": 0.5})
    assert not bar.bar.desc
    bar(1, 10, {"psnr": 20.0, "bpp": 0.5, "candidate": 2, "candidates": 2})
    assert bar.bar.desc.startswith("encode 2/2")
    bar.close()
