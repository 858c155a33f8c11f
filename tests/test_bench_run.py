"""The ``python -m bench`` sweep end to end on tiny generated images: rows, resuming, summary, plots."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helper import image_folder, synthetic_image
from PIL import Image

from bench.__main__ import main
from bench.codecs import CODECS, Jpeg420, setting_key
from bench.results import COLUMNS, read_rows, row_key

N_ROWS = len(CODECS["jpeg420"].sweep) + len(CODECS["webp"].sweep)


def smooth_image(size: int, seed: int) -> Image.Image:
    """A compressible test image: smooth colour gradients plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    planes = [np.sin(3 * x + seed), np.cos(2 * y), x * y]
    rgb = np.stack(planes, -1) * 100 + 128 + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    smooth_image(64, 0).save(folder / "tiny.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def rd(images: Path, out: Path, *extra: str) -> int:
    return main(["rd", "--images", str(images), "--out", str(out), "--codecs", "jpeg420,webp", *extra])


def test_rd_end_to_end(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert rd(images, out) == 0
    rows = read_rows(out / "rd.csv")
    assert len(rows) == N_ROWS
    assert (out / "rd.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    first = rows[0]
    assert (first["codec"], first["setting"], first["image"]) == ("jpeg420", "quality=3", "tiny.png")
    assert first["codec_version"].startswith("Pillow ") and "libjpeg-turbo" in first["codec_version"]
    for row in rows:
        assert row["bpp"] == pytest.approx(row["bytes"] * 8 / (64 * 64))
        assert 15 < row["psnr"] < 60
        assert math.isnan(row["msssim"]) and math.isnan(row["msssim_db"])  # 64 px is too small
        assert row["encode_s"] > 0 and row["decode_s"] > 0
    for name in ("summary.csv", "fixed_rate.csv", "bd.csv", "bd_per_image.csv", "report.md", "visual.png"):
        assert (out / name).stat().st_size > 0, name
    for stem in ("rd_psnr", "rd_msssim"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.svg").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "![PSNR (dB)](rd_psnr.png)" in report and "--codecs jpeg420,webp" in report
    assert "jpeg420,webp,psnr," in (out / "bd.csv").read_text()


def test_rd_resumes_without_redoing_rows(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert rd(images, out) == 0
    csv_path = out / "rd.csv"
    lines = csv_path.read_text().splitlines()
    # Drop two rows, and mark one kept row so that a recomputation would show.
    kept = lines[:3] + lines[5:]
    kept[1] = kept[1].replace("Pillow", "MARKED", 1)
    csv_path.write_text("\n".join(kept) + "\n")

    assert rd(images, out) == 0
    rows = read_rows(csv_path)
    assert len(rows) == N_ROWS
    assert len({row_key(r) for r in rows}) == N_ROWS
    assert rows[0]["codec_version"].startswith("MARKED")
    assert [r["setting"] for r in rows[-2:]] == [setting_key(s) for s in Jpeg420.sweep[2:4]]
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["rows_written"] for r in runs] == [N_ROWS, 2]


def test_rd_in_worker_processes(images: Path, tmp_path: Path) -> None:
    smooth_image(64, 1).save(images / "tiny2.png")
    out = tmp_path / "results"
    assert rd(images, out, "--jobs", "2", "--limit-images", "1") == 0
    rows = read_rows(out / "rd.csv")
    assert len(rows) == N_ROWS and {r["image"] for r in rows} == {"tiny.png"}
    assert {r["torch_threads"] for r in rows} == {1.0}


def test_failing_codec_writes_no_row_and_fails_the_run(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Jpeg420, img: Image.Image, setting: dict) -> bytes:
        if setting["quality"] == 50:
            raise RuntimeError("boom")
        return original(self, img, setting)

    original = Jpeg420.encode
    monkeypatch.setattr(Jpeg420, "encode", broken)
    out = tmp_path / "results"
    assert rd(images, out) == 1
    rows = read_rows(out / "rd.csv")
    assert len(rows) == N_ROWS - 1 and "quality=50" not in {r["setting"] for r in rows if r["codec"] == "jpeg420"}


def test_summary_and_plot_commands(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert rd(images, out) == 0
    for name in ("summary.csv", "report.md", "rd_psnr.svg", "visual.png"):
        (out / name).unlink()
    assert main(["summary", str(out)]) == 0
    assert (out / "summary.csv").exists() and (out / "report.md").exists()
    assert not (out / "rd_psnr.svg").exists()
    assert main(["plot", str(out), "--crop", "10,10,32"]) == 0  # images folder comes from runs.jsonl
    assert (out / "rd_psnr.svg").exists()
    with Image.open(out / "visual.png") as sheet:
        assert sheet.height > 64
    (out / "visual.png").unlink()
    (out / "rd_psnr.svg").unlink()
    assert main(["plot", str(out), "--no-sheet"]) == 0
    assert (out / "rd_psnr.svg").exists() and not (out / "visual.png").exists()
    assert main(["summary", str(tmp_path / "nothing")]) == 2


def test_quality_vs_time_rows_and_summary(tmp_path: Path) -> None:
    from bench import quality_vs_time

    images = image_folder(tmp_path, {"tiny.png": (40, 32)})
    out = tmp_path / "out"
    argv = ["--images", str(images), "--seconds", "0.5,1", "--bpp", "4", "--threads", "1", "--out", str(out)]
    quality_vs_time.main(argv)
    rows = (out / quality_vs_time.CSV_NAME).read_text().splitlines()
    assert len(rows) == 3  # header + one row per time limit
    quality_vs_time.main(argv)  # resumable: nothing new
    assert (out / quality_vs_time.CSV_NAME).read_text().splitlines() == rows
    quality_vs_time.main([*argv[:3], "1", *argv[4:], "--effort", "fast"])  # another effort: a new row
    rows = (out / quality_vs_time.CSV_NAME).read_text().splitlines()
    assert len(rows) == 4 and rows[-1].startswith("tiny.png,fast,1.0,")
    summary = (out / "quality_vs_time.md").read_text()
    assert "| 0.5 | default | 1 |" in summary and "| 1 | default | 1 |" in summary and "| 1 | fast | 1 |" in summary


def test_rate_calibration_fit_recovers_a_known_model() -> None:
    from bench.calibrate_rate import fit_model

    truth = (-7.0, 2.5, -2.0, 0.7)
    rows = [{"probe_rate": str(p), "target_latent_bpp": str(t), "probe_mse": str(d),
             "lambda_needed": str(math.exp(truth[0] + truth[1] * math.log(p) + truth[2] * math.log(t)
                                           + truth[3] * math.log(d)))}
            for p, t, d in [(0.5, 0.2, 1e-3), (1.0, 0.4, 3e-3), (2.0, 0.3, 2e-3), (1.5, 1.0, 5e-4), (0.8, 0.9, 4e-3)]]
    coef, residuals = fit_model(rows)
    assert coef == pytest.approx(truth, abs=1e-9)
    assert max(abs(r) for r in residuals) < 1e-9


def test_steering_calibration_fit_recovers_a_known_model() -> None:
    from bench.calibrate_rate import fit_steer_model

    decay, elasticity = -0.4, 0.8
    rows = [{"probe_lambda": str(lam), "lambda_held": str(lam * math.exp(move)), "steer_rate": str(rate),
             "final_latent_bpp": str(rate * math.exp(decay - elasticity * move))}
            for lam, move, rate in [(1e-3, 0.3, 1.0), (5e-3, -0.2, 0.4), (2e-2, 0.0, 0.2), (4e-4, 0.6, 2.0)]]
    g, e, residuals = fit_steer_model(rows)
    assert (g, e) == pytest.approx((decay, elasticity), abs=1e-9)
    assert max(abs(r) for r in residuals) < 1e-9


def test_rate_calibration_rows_and_summary(tmp_path: Path) -> None:
    from bench import calibrate_rate

    images = image_folder(tmp_path, {"a.png": (40, 32), "b.png": (32, 40), "c.png": (48, 24)})
    out = tmp_path / "out"
    argv = ["--images", str(images), "--pick", "a,b,c", "--bpps", "2,4", "--iterations", "12", "--jobs", "1",
            "--out", str(out)]
    calibrate_rate.main(argv)
    rows = (out / calibrate_rate.CSV_NAME).read_text().splitlines()
    assert len(rows) == 7  # header + 3 images x 2 rates
    calibrate_rate.main(argv)  # resumable: nothing new
    assert (out / calibrate_rate.CSV_NAME).read_text().splitlines() == rows
    summary = (out / "rate_model.md").read_text()
    assert "RATE_MODEL = (" in summary and summary.count("| a.png |") == 3  # two fits, one prior row
    assert "## Steering" in summary and "## Prior" in summary
    assert "- -" not in summary  # the steering's response is written with its own sign
    assert summary.count("ln(JPEG bpp at quality 30)") == 2  # the prior, and the own rate model
    assert "## Own rate model" in summary and "own_rate_model = (" in summary


def test_the_own_rate_model_reads_the_probe_rate_beside_the_prior_s_terms() -> None:
    from bench.calibrate_rate import fit_prior

    want = (-6.0, 1.3, -1.8, 2.3)  # ln lambda = a + b ln probe + c ln target + e ln JPEG bpp
    complexity = {"a.png": 0.4, "b.png": 0.7, "c.png": 1.0}
    rows = []
    for name, probe, target in [("a.png", 1.0, 0.25), ("a.png", 1.5, 0.5), ("b.png", 0.8, 0.5),
                                ("b.png", 2.0, 1.0), ("c.png", 1.2, 0.25), ("c.png", 1.9, 1.0)]:
        log_lambda = want[0] + want[1] * math.log(probe) + want[2] * math.log(target) + want[3] * math.log(
            complexity[name])
        rows.append({"image": name, "probe_rate": str(probe), "target_latent_bpp": str(target),
                     "lambda_needed": str(math.exp(log_lambda))})
    coef, residuals, _ = fit_prior(rows, complexity, with_probe=True)
    assert coef == pytest.approx(want, abs=1e-6) and max(abs(r) for r in residuals) < 1e-6
    prior, _, _ = fit_prior(rows, complexity)
    assert len(prior) == 3


def test_rate_calibration_infers_the_lambda_needed_at_the_given_elasticity() -> None:
    from bench.calibrate_rate import with_elasticity
    from inrcodec.train.fit import DROP_LAMBDA_FACTOR

    raw = {"lambda_held": "0.001", "final_latent_bpp": "1.0", "target_latent_bpp": "0.5", "lambda_needed": "1"}
    kept, dropped, old = with_elasticity([{**raw, "dropped_finest": "0"}, {**raw, "dropped_finest": "1"},
                                          {"lambda_needed": "0.5"}], elasticity=0.5)
    assert float(kept["lambda_needed"]) == pytest.approx(0.004)  # twice the target at elasticity 0.5: 4x lambda
    assert float(dropped["lambda_needed"]) == pytest.approx(0.004 / DROP_LAMBDA_FACTOR)  # in the model's terms
    assert old == {"lambda_needed": "0.5"}  # a calibration without the raw columns stays as it was
    assert float(with_elasticity([{**raw, "dropped_finest": "0"}], 1.0)[0]["lambda_needed"]) == pytest.approx(0.002)


def test_prior_fit_recovers_a_planted_model() -> None:
    from bench.calibrate_rate import fit_prior

    a, b, c = -6.0, -1.7, 3.0
    complexity = {"x.png": 0.4, "y.png": 0.7, "z.png": 1.0, "w.png": 0.55}
    rows = [{"image": name, "target_latent_bpp": str(t), "lambda_needed": str(math.exp(a + b * math.log(t) + c * math.log(j)))}
            for name, j in complexity.items() for t in (0.25, 0.5, 1.0)]
    coef, residuals, left_out = fit_prior(rows, complexity)
    assert coef == pytest.approx([a, b, c], abs=1e-9)
    assert max(abs(e) for e in residuals + left_out) < 1e-9


def test_jpeg_bpp_measures_detail_without_the_headers() -> None:
    from inrcodec.train.complexity import MIN_JPEG_BPP, jpeg_bpp

    y, x = np.mgrid[0:64, 0:96]
    smooth = np.stack([x * 255 // 96, y * 255 // 64, (x + y) * 255 // 160], -1).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert MIN_JPEG_BPP <= jpeg_bpp(smooth) < 0.5 < jpeg_bpp(noise)
    # Headers are left out: a flat image costs little per pixel at any size
    # (an 8x8 one with its ~600 bytes of headers would be ~80 bpp) ...
    for size in (8, 16, 200):
        assert MIN_JPEG_BPP <= jpeg_bpp(np.full((size, size, 3), 77, dtype=np.uint8)) < 0.5
    # ... and a tile of the noise costs about what the whole does per pixel.
    assert jpeg_bpp(noise[:32, :32]) == pytest.approx(jpeg_bpp(noise), rel=0.1)


def test_the_machine_line_names_the_cpu_family_and_model_of_the_first_processor() -> None:
    from bench.results import cpu_name
    cpuinfo = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
               "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: Other\n")
    assert cpu_name(cpuinfo) == "AMD EPYC (family 26, model 2)"
    assert cpu_name("processor\t: 0\nmodel name\t: Apple M9\n") == "Apple M9"  # no numbers given


def test_rd_keeps_inrcodecs_files_for_decode_speed(images: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`--keep-cocos` saves each inrcodec file as written, named as `bench.decode_speed --cocos` reads them."""
    from bench.codecs import InrCodec
    from bench.decode_speed import kept_cocos

    written = {}

    def encode(self, img: Image.Image, setting: dict) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=int(setting["bpp"] * 4))
        written[setting["effort"], setting["bpp"]] = buf.getvalue()
        return buf.getvalue()

    monkeypatch.setattr(InrCodec, "encode", encode)
    monkeypatch.setattr(InrCodec, "decode", lambda self, data: Image.open(io.BytesIO(data)))
    kept = tmp_path / "kept"
    assert main(["rd", "--images", str(images), "--out", str(tmp_path / "results"), "--codecs", "jpeg420,inrcodec",
                 "--inrcodec-bpps", "0.5,1", "--inrcodec-efforts", "fast", "--keep-cocos", str(kept),
                 "--no-sheet"]) == 0
    found = kept_cocos(kept)
    assert sorted(found) == [(Path("tiny.png"), "fast", 0.5), (Path("tiny.png"), "fast", 1.0)]
    assert all(found[key].read_bytes() == written["fast", key[2]] for key in found)
    assert len(list(kept.iterdir())) == 2  # nothing kept of jpeg420
