"""The landing's rate cut compared: latents ranked by distortion per bit saved against the dead zone.

    python -m bench.shrink_cut --images /work/shared/data/kodak \\
        --pick kodim11:2.6e-3,kodim03:8e-4 --cuts 0.03,0.06,0.1,0.15 --out DIR

Each picked image is fitted once at its lambda with an effort's schedule
and architecture (no rate target), written, and then cut from that same
trained model to (1 - cut) of its latent bits by both methods of
`encoder._shrink_to`: the rounding dead zone (`by_cost=False`, the only cut
before 2026-12-03) and the cost-ranked one (`inrcodec.train.shrink`; in the
encoder, every cut but timed format 1.0 ones). Both files are decoded and scored. "slope"
is the uncut file's PSNR moved to the cut file's rate along
`encoder.PSNR_PER_LN_RATE`: roughly what a fit trained for that rate would
score. Rows go to shrink_cut.csv (one per image, cut and method);
shrink_cut.md tabulates them.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.results import append_csv_row, machine, utc_now
from inrcodec.imageio import load_image
from inrcodec.train import encoder
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.shrink import n_candidates, n_moved, shrink_costs

CSV_NAME = "shrink_cut.csv"
COLUMNS = ("image", "effort", "lmbda", "steps", "cut", "method", "bpp", "psnr", "uncut_bpp", "uncut_psnr",
           "slope_psnr", "reached", "moved", "seconds", "machine", "date")


def _picks(text: str) -> list[tuple[str, float]]:
    picks = []
    for part in text.split(","):
        name, _, lmbda = part.partition(":")
        picks.append((name if name.endswith(".png") else f"{name}.png", float(lmbda)))
    return picks


def _cut(fitter: Fitter, data: bytes, target_bits: float, by_cost: bool) -> tuple[bytes | None, int]:
    model = fitter.model
    model.dead_zone, model.shrink = 0.0, None
    if not by_cost:
        return encoder._shrink_to(fitter, data, target_bits, by_cost=False), 0
    wanted = encoder._wanted_latent_bpp(fitter, data, target_bits)
    if not encoder._shrink_by_cost(fitter, wanted):
        # Recorded as minus the candidates: every one of them moving was not enough.
        return None, -n_candidates(shrink_costs(model, fitter.image, fitter.bands()))
    return encoder._quantize_and_write(model, fitter.image, fitter.lmbda, fitter.seed), n_moved(model.shrink)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--pick", required=True, help="image:lambda,... e.g. kodim11:2.6e-3")
    parser.add_argument("--cuts", default="0.03,0.06,0.1,0.15", help="fractions of the latent bits to cut")
    parser.add_argument("--effort", choices=("fast", "default", "max"), default="default")
    parser.add_argument("--steps", type=int, default=None, help="fit this many steps instead of the effort's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    schedule, arch = encoder.SCHEDULES[args.effort], encoder.ARCHITECTURES[args.effort]
    if args.steps is not None:
        schedule = replace(schedule, iterations=args.steps)
    cuts = [float(c) for c in args.cuts.split(",")]
    for name, lmbda in _picks(args.pick):
        pixels, _ = load_image(args.images / name)
        height, width, _ = pixels.shape
        image = torch.tensor(pixels, dtype=torch.float32) / 255
        torch.manual_seed(0)
        model = encoder.new_model(height, width, schedule, arch, torch.device("cpu"))
        fitter = Fitter(image, model, RateTarget(None, lmbda), seed=0)
        fitter.run(schedule)
        data = encoder._quantize_and_write(model, image, lmbda, 0)
        psnr_of = encoder.decoded_psnr(pixels)
        uncut_bits, uncut_psnr = len(data) * 8, psnr_of(data)
        latent_bits = encoder.latent_section_bits(data)
        for cut in cuts:
            target = uncut_bits - cut * latent_bits
            for method, by_cost in (("dead zone", False), ("by cost", True)):
                start = time.monotonic()
                file, moved = _cut(fitter, data, target, by_cost)
                seconds = time.monotonic() - start
                row = {"image": name, "effort": args.effort, "lmbda": lmbda, "steps": schedule.iterations,
                       "cut": cut, "method": method, "uncut_bpp": f"{uncut_bits / (height * width):.5f}",
                       "uncut_psnr": f"{uncut_psnr:.3f}", "reached": file is not None, "moved": moved,
                       "seconds": f"{seconds:.2f}", "machine": machine(), "date": utc_now()}
                if file is not None:
                    row["bpp"] = f"{len(file) * 8 / (height * width):.5f}"
                    row["psnr"] = f"{psnr_of(file):.3f}"
                    slope = uncut_psnr - encoder.PSNR_PER_LN_RATE * math.log(uncut_bits / (len(file) * 8))
                    row["slope_psnr"] = f"{slope:.3f}"
                append_csv_row(args.out / CSV_NAME, COLUMNS, row)
                print(f"{name} cut {cut:.2f} {method}: {row.get('bpp', '-')} bpp {row.get('psnr', '-')} dB "
                      f"(slope {row.get('slope_psnr', '-')}), moved {moved}", flush=True)
            fitter.model.dead_zone, fitter.model.shrink = 0.0, None
    write_summary(args.out)


def write_summary(out: Path) -> None:
    """shrink_cut.md from the CSV: both methods side by side per image and cut."""
    with (out / CSV_NAME).open() as f:
        rows = list(csv.DictReader(f))
    lines = ["# The landing's rate cut: by cost against the dead zone", "",
             f"Generated by `python -m bench.shrink_cut` from {CSV_NAME}. Rows dated "
             f"{rows[0]['date']} to {rows[-1]['date']}; {rows[0]['machine']}.", "",
             "| image | effort | lambda | uncut bpp / dB | cut | dead zone bpp / dB | by cost bpp / dB "
             "| by cost - dead zone (dB) | by cost - slope (dB) |", "|---|---|---|---|---|---|---|---|---|"]
    by_key: dict[tuple[str, str, str], dict[str, dict[str, str]]] = {}
    for r in rows:
        by_key.setdefault((r["image"], r["effort"], r["cut"]), {})[r["method"]] = r
    gains = []
    for (image, effort, cut), methods in by_key.items():
        dz, rk = methods.get("dead zone"), methods.get("by cost")
        if dz is None or rk is None:
            continue

        def cell(r: dict[str, str]) -> str:
            return f"{float(r['bpp']):.4f} / {float(r['psnr']):.2f}" if r["psnr"] else "not reached"

        diff = slope = "-"
        if dz["psnr"] and rk["psnr"]:
            gain = float(rk["psnr"]) - float(dz["psnr"])
            gains.append(gain)
            diff = f"{gain:+.2f}"
        if rk["psnr"]:
            slope = f"{float(rk['psnr']) - float(rk['slope_psnr']):+.2f}"
        lines.append(f"| {image} | {effort} | {dz['lmbda']} | {float(dz['uncut_bpp']):.4f} / "
                     f"{float(dz['uncut_psnr']):.2f} | {float(cut):.2f} | {cell(dz)} | {cell(rk)} | {diff} | {slope} |")
    if gains:
        lines += ["", f"Mean by cost - dead zone where both reached: {np.mean(gains):+.2f} dB over {len(gains)} cuts."]
    (out / "shrink_cut.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
