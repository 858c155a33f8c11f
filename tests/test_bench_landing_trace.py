"""`python -m bench.landing_trace`: every training run and every file of one encode, and nothing changed by it."""

from __future__ import annotations

import argparse
import re

import pytest
from helper import synthetic_image

from bench.landing_trace import schedule_change, trace
from inrcodec.train import encoder
from inrcodec.train import fit
from inrcodec.train.fit import Fitter


def test_the_trace_lists_each_run_and_file_and_the_kept_file_among_them() -> None:
    pixels = synthetic_image(40, 56)
    options = encoder.EncodeOptions(bpp=2.0, effort="fast", iterations=40)
    run, write, probe, steer = Fitter.run, encoder._quantize_and_write, Fitter.probe, Fitter.steer
    lines, result = trace(pixels, options)
    assert Fitter.run is run and encoder._quantize_and_write is write  # the tracing is undone
    assert Fitter.probe is probe and Fitter.steer is steer
    probes = [line for line in lines if line.strip().startswith("probe ")]
    steers = [line for line in lines if line.strip().startswith("steer ")]
    assert len(probes) == 1 and len(steers) == len(set(fit.steer_steps(40)))
    assert int(probes[0].split()[3]) == fit.probe_step(40)  # the step it ran at
    assert lines.index(probes[0]) < lines.index(next(line for line in lines if line.startswith("fit ")))
    runs = [line for line in lines if re.match(r"(fit|refit) ", line)]
    files = [float(line.split()[1]) for line in lines if line.startswith("file ")]
    assert runs[0].startswith("fit ") and int(runs[0].split()[1]) == 40
    assert sum(int(line.split()[1]) for line in runs) == result.iterations
    assert any(abs(bpp - result.bpp) < 5e-5 for bpp in files)
    untraced = encoder.encode_array(pixels, options)
    assert untraced.data == result.data  # tracing changes no file


def test_set_changes_the_schedule_the_fit_runs_and_only_inside_the_trace() -> None:
    assert schedule_change("soft_rounding=none") == ("soft_rounding", None)
    assert schedule_change("lr_latent=0.03") == ("lr_latent", 0.03)
    assert schedule_change("soft_rounding=0.5,0.2") == ("soft_rounding", (0.5, 0.2))
    assert schedule_change("iterations=40") == ("iterations", 40)
    assert schedule_change("refit_promised=false") == ("refit_promised", False)
    for bad in ("no_such_field=1", "lr_latent=", "lr_latent=fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            schedule_change(bad)
    seen: list[fit.Schedule] = []
    run = Fitter.run

    def record(self: Fitter, schedule: fit.Schedule, *args: object, **kwargs: object) -> int:
        seen.append(schedule)
        return run(self, schedule, *args, **kwargs)  # type: ignore[arg-type]

    Fitter.run = record  # type: ignore[method-assign]
    try:
        trace(synthetic_image(40, 56), encoder.EncodeOptions(bpp=2.0, effort="fast", iterations=40),
              {"lr_latent": 0.07})
    finally:
        Fitter.run = run  # type: ignore[method-assign]
    assert seen and all(schedule.lr_latent == 0.07 for schedule in seen)  # the fit and its refits
    assert encoder.schedule_for("fast", 2.0).lr_latent == encoder.SCHEDULES["fast"].lr_latent  # undone
