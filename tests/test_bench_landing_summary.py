"""`python -m bench.landing_summary`: what a landing trace says of the fit, the kept file and the refits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.landing_summary import main, parse_trace, read_folder
from inrcodec.train.encoder import PSNR_PER_LN_RATE

TRACE = """kodim07.png at 1.0 bpp, --effort default; Linux x86_64; a CPU; 2 CPUs, 1 threads, 2026-12-05T22:50:00+00:00
  probe at step   600  latent bpp 0.5000  lambda 1.000e-03 -> 1.250e-04  first level 0
  steer at step  1512  latent bpp 1.0000  lambda 1.250e-04 -> 1.250e-04  first level 0
fit    5040 steps  lambda 1.100e-04   109.2 s
file  1.1000 bpp  38.00 dB  first level 0  dead zone 0.000  moved      0   0.3 s
refit   840 steps  lambda 1.118e-04    17.2 s
file  1.0731 bpp  37.88 dB  first level 0  dead zone 0.000  moved      0   0.3 s
refit   840 steps  lambda 1.262e-04    17.5 s
file  0.9993 bpp  37.64 dB  first level 0  dead zone 0.000  moved  13233   0.3 s
kept  0.9993 bpp  37.64 dB  6720 steps  149.7 s
"""


def test_a_trace_gives_the_fits_file_the_kept_file_and_the_refits() -> None:
    landing = parse_trace(TRACE)
    assert (landing.image, landing.requested) == ("kodim07.png", 1.0)
    assert (landing.fit_bpp, landing.fit_psnr) == (1.1, 38.0)  # the first file, not a refit's
    assert (landing.kept_bpp, landing.kept_psnr) == (0.9993, 37.64)
    assert landing.refits == 2 and landing.refit_seconds == pytest.approx(34.7)
    assert landing.seconds == 149.7
    assert landing.fit_at_request == pytest.approx(38.0 - PSNR_PER_LN_RATE * math.log(1.1))


def test_an_unfinished_trace_is_refused_and_skipped_in_a_folder(tmp_path: Path) -> None:
    unfinished = TRACE.split("kept")[0]
    with pytest.raises(ValueError):
        parse_trace(unfinished)
    (tmp_path / "kodim07.txt").write_text(TRACE)
    (tmp_path / "kodim08.txt").write_text(unfinished.replace("kodim07", "kodim08"))
    assert list(read_folder(tmp_path)) == [("kodim07.png", 1.0)]


def test_two_folders_pair_their_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    (old / "kodim07.txt").write_text(TRACE)
    (new / "kodim07.txt").write_text(TRACE.replace("kept  0.9993 bpp  37.64 dB  6720 steps  149.7 s",
                                                   "kept  1.0000 bpp  38.14 dB  5880 steps  130.0 s"))
    main([str(old), str(new)])
    out = capsys.readouterr().out
    assert "| kodim07.png | 1 | 37.64 | 38.14 | +0.50 | 149.7 | 130.0 |" in out
    assert "1 images: +0.50 dB at the request on average, 1 better; encode 149.7 -> 130.0 s mean." in out
    assert "kept files 1 of 1" in out and "fit files within the rate promise 0 of 1" in out
