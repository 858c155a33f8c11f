"""`python -m bench.pair_traces`: the file the default effort's pair keeps, from each candidate's traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.pair_traces import main

TRACE = """{image} at 0.5 bpp, --effort default; Linux x86_64; a CPU; 2 CPUs, 1 threads, 2026-12-06T06:00:00+00:00
fit    2500 steps  lambda 2.626e-03    66.9 s
file  0.6445 bpp  28.60 dB  first level 0  dead zone 0.000  moved      0   0.5 s
refit   416 steps  lambda 4.082e-03    11.6 s
file  {bpp} bpp  {psnr} dB  first level 0  dead zone 0.000  moved      0   0.4 s
kept  {bpp} bpp  {psnr} dB  2916 steps  {seconds} s
"""


def write(folder: Path, image: str, bpp: str, psnr: str, seconds: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{image}.txt").write_text(TRACE.format(image=f"{image}.png", bpp=bpp, psnr=psnr, seconds=seconds))


def test_each_pair_keeps_the_better_file_and_takes_its_slower_fits_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, plain, other = tmp_path / "soft", tmp_path / "plain", tmp_path / "other"
    write(first, "kodim01", "0.5000", "27.00", "90.0")
    write(plain, "kodim01", "0.5000", "26.50", "80.0")  # worse: the first's file
    write(other, "kodim01", "0.5000", "27.40", "95.0")  # better: its own
    write(first, "kodim02", "0.5000", "34.00", "90.0")
    write(plain, "kodim02", "0.5000", "34.20", "85.0")
    write(other, "kodim02", "0.4000", "35.00", "85.0")  # higher PSNR but 20 % under: the first's
    write(first, "kodim03", "0.5000", "30.00", "90.0")  # not traced by every folder: left out
    main([str(first), str(plain), str(other)])
    out = capsys.readouterr().out
    assert "| kodim01.png | 0.5 | 27.00 | 26.50 | 27.00 (1) | 27.40 | 27.40 (2) |" in out
    assert "| kodim02.png | 0.5 | 34.00 | 34.20 | 34.20 (2) | 36.00 | 34.00 (1) |" in out
    assert "kodim03" not in out
    assert ("pair with plain: 30.60 dB at the request on average, the second fit's file kept 1 of 2 times, "
            "2 of 2 within the rate promise, encode (the slower fit) 90.0 s mean, 90.0 s at most.") in out
    assert "pair with other: 30.70 dB" in out and "95.0 s at most" in out
    assert "pair with other against pair with plain: +0.10 dB at the request, 1 better, 1 worse (of 2)." in out


def test_every_pair_is_set_against_the_old_pair_on_the_images_all_traced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_soft, old_plain, soft, plain = (tmp_path / name for name in ("old-soft", "old-plain", "soft", "plain"))
    write(old_soft, "kodim01", "0.5000", "27.00", "95.0")
    write(old_plain, "kodim01", "0.5000", "27.20", "85.0")  # the old pair keeps 27.20
    write(soft, "kodim01", "0.5000", "27.50", "75.0")
    write(plain, "kodim01", "0.5000", "27.10", "80.0")  # the new pair keeps 27.50
    write(soft, "kodim02", "0.5000", "34.00", "75.0")  # the old pair did not trace it: left out
    write(plain, "kodim02", "0.5000", "34.00", "75.0")
    main([str(soft), str(plain), "--old-pair", str(old_soft), str(old_plain)])
    out = capsys.readouterr().out
    assert "kodim02" not in out
    assert "- the old pair: 27.20 dB at the request on average, encode (the slower fit) 95.0 s mean." in out
    assert "- pair with plain against the old pair: +0.30 dB at the request, 1 better, 0 worse (of 1)." in out
    assert "encode (the slower fit) 80.0 s mean" in out
