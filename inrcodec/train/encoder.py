"""The encoder: fit, quantize, entropy-code, and land on the requested rate."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from ..format.architecture import Architecture
from ..format.bitstream import read_coco, read_sections, write_coco
from ..format.render import render
from ..format.upsampling import UP_TAPS
from .complexity import jpeg_bpp
from .fit import (
    DROP_FINEST_ABOVE,
    DROP_LAMBDA_FACTOR,
    SHORT_FIT_STEPS,
    SOFT_ROUNDING,
    OWN_RATE_MODEL_FAST,
    Fitter,
    ProgressFn,
    RateTarget,
    Schedule,
    initial_lambda,
)
from .model import CocoNet
from .pretrained import start_from_pretrained
from .quantize import quantize_model
from .shrink import n_candidates, shrink_costs, shrink_masks
from .side_by_side import encode_side_by_side

Effort = Literal["fast", "default", "max"]

ARCHITECTURE = Architecture(n_levels=7, synth_hidden=(16, 16), arm_hidden=(16, 16))
# `--effort fast` is short of steps: its fits use a context model of 8x8
# hidden units, whose training step is ~0.83x the 16x16 one's
# (bench/results/step-time-2026-12-02), and spend the time saved on more
# steps (770 instead of 650, below). At fixed lambdas, 8x8 at the same steps
# lost 0.18 dB at the same rate and at the same time gained 0.11 dB
# (bench/results/fixed-lambda-fast-arm-2026-12-02). End to end, kodim01-12
# at 0.25-1 bpp: +0.21 dB at the request, 32 of 48 files better, BD-rate vs
# JPEG 4:2:0 +27.1 % -> +23.3 %, 48 of 48 within 5 %
# (bench/results/kodak-fast-arm8-2026-12-02 against kodak-fast-busyaim-2026-12-02).
# A 12x12 context model at 743 steps (770 x 0.83 / 0.86, the step-time
# ratios on that machine) did better still at fixed lambdas: +0.15 dB at
# the same rate, 6 of 8 files (bench/results/fixed-lambda-fast-arm12-2026-12-02).
# End to end, kodim01-12 at 0.25-1 bpp on another machine (AMD EPYC family
# 26, ~3x faster): +0.10 dB at the request, 30 of 48 files better, BD-rate vs
# JPEG 4:2:0 +23.2 % -> +20.9 %, 48 of 48 within 5 %; 12.1 s mean against
# 10.4 s, and 10.7 s when the same files were encoded again half an hour
# later (bench/results/kodak-fast-arm12-2026-12-02 against
# kodak-fast-family26-2026-12-02; -02b). Adam's first moment decaying at 0.8
# in short fits (fit.SHORT_FIT_BETA1), on an Intel Xeon about as fast:
# BD-rate +20.1 % -> +13.8 %, +0.23 dB at the request, 35 of 48 files
# better, 48 of 48 within 5 %, 12.1 -> 12.6 s mean
# (bench/results/kodak-fast-beta1-2026-12-02 against kodak-fast-family6-2026-12-02).
# The default and max efforts keep 16x16: they are not short of steps.
# The default and max efforts write format 2.0: its wavefront context
# (`Architecture.context_tile`: each latent sees its twelve raster-causal
# neighbours within 32x32 tiles) gained +0.5 to +1.3 dB at the same rate
# over format 1.0's checkerboard at fixed lambdas
# (bench/results/trained-context-2026-12-03), and end to end at the default
# effort, kodim01-12 at 0.5 bpp, +0.28 dB at the request, 8 of 12 files
# better; its files decode in 0.26 s against 0.15 s
# (bench/results/kodak-default-v2-2026-12-03). `--effort fast` kept 1.0
# until FAST_ON_V3 (below): in its 743 steps, with plain noise, the richer
# context did not pay (+0.05 dB on 11 files at ~1.6x the encode time, the
# same folder's fast-v2/).
# Since 2026-12-05 the tiles are 64x64 (were 32x32; the tile is a header
# field, so files of either decode): fewer latents lose neighbours at tile
# edges. kodim01-12 at 0.25 / 0.5 / 0.75 / 1 bpp, the default effort:
# +0.00 / +0.13 / +0.14 / +0.06 dB at the request (38 of 48 files better),
# BD-rate vs JPEG 4:2:0 -27.4 % -> -29.2 %, about the same encode time; decoding
# costs ~1.2x (0.169 -> 0.198 s at 0.5 bpp, twice the wavefront steps on
# the levels of 64 cells and more) (bench/results/kodak-default-tile64-2026-12-05).
# 128x128 tiles gained less at 0.5 bpp (+0.09 dB, 7 of 12 better; same folder).
# `--effort max` at 0.5 bpp: +0.18 dB, 10 of 12 better (kodak-max-tile64-2026-12-05).
# FAST_ON_V3. Since 2026-12-06 (fourth session) `--effort fast` writes format
# 3.0 too (its 12x12 context model kept), and its fits soft-round
# (SCHEDULES["fast"]): format 3.0 with plain noise had gained +0.17 dB only,
# smooth images losing up to 1.6 dB (bench/results/fast-v3-2026-12-06-not-adopted),
# and at fixed lambdas in 743 steps soft rounding was worth +2.4 to +3.7 dB
# at the same rate on kodim03 there, against +-0.1 dB on format 1.0; on 3.0
# with soft rounding kodim01 / 03 / 12 gained ~1 to 1.3 dB at the same rate
# over format 1.0 (ad hoc, bench.fixed_lambda). End to end, kodim01-12 at
# 0.5 bpp, alternated image by image with format 1.0 on an Intel Xeon family
# 6: +1.08 dB at the request, 12 of 12 better, 12 of 12 within 5 %, but
# 11.1 -> 17.7 s mean, four encodes 20.0-21.8 s (a 3.0 step costs ~1.55x,
# and the landing refits up to four times: the fits end ~30 % under the
# request on average) (bench/results/fast-soft-v3-2026-12-06/stop-at-promise).
# Its landing stops at the first file within the rate promise
# (`Schedule.refit_promised`): the same twelve files as with a polishing
# refit, 18.7 s mean (soft-743/). It aims lambda with a rate model of its
# own (fit.OWN_RATE_MODEL_FAST): without it 7 of 24 files at 0.75 and 1
# bpp landed more than 5 % under. The whole sweep, kodim01-12 at 0.25-1
# bpp: BD-rate vs JPEG 4:2:0 +13.0 % -> -12.2 %, +1.32 dB at the request,
# 48 of 48 files better and within 5 %, but 10.9 -> 18.5 s mean, 25 of 48
# encodes over the 20 s (26.3 s at most) (sweep/). Cutting the
# own model's overshoots at once, instead of refits that cannot shed
# them, lost 0.61 dB (cut-overshoots-not-adopted/).
# Fewer steps lose more than they save: 620 steps +0.69 dB at 17.1 s mean
# (soft-620-not-adopted/); refits of 1/12 of the fit +0.35 dB at 15.3 s, one file
# 6.8 % under (short-refits-not-adopted/). Under a time limit below
# WAVEFRONT_MIN_TIME_LIMIT the fast effort fits format 1.0 with plain noise,
# as before.
CONTEXT_TILE = (64, 64)
ARCHITECTURES: dict[str, Architecture] = {
    "fast": replace(ARCHITECTURE, arm_hidden=(12, 12), context_tile=CONTEXT_TILE, learned_upsampling=True),
    "default": replace(ARCHITECTURE, context_tile=CONTEXT_TILE, learned_upsampling=True),
    "max": replace(ARCHITECTURE, context_tile=CONTEXT_TILE, learned_upsampling=True),
}
# Under a time limit shorter than this, every effort fits format 1.0's
# checkerboard context: a format 2.0 step costs ~1.75x (step-time-2026-12-03),
# and a short fit gets too few of them for the richer context to pay.
# Default effort at 0.5 bpp, kodim01-06, alternating with format 1.0 on
# the same machine (bench/results/quality-vs-time-v2-2026-12-03): under
# 10 s 2.0 was 1.23 dB worse on average (1 of 6 better; kodim02 landed
# 23 % under), under 30 s even (-0.02 dB, 3 of 6).
WAVEFRONT_MIN_TIME_LIMIT = 30.0


def architecture_for(effort: Effort, time_limit: float | None) -> Architecture:
    """The effort's architecture (ARCHITECTURES), on format 1.0's context under a short time limit."""
    arch = ARCHITECTURES[effort]
    if time_limit is not None and time_limit < WAVEFRONT_MIN_TIME_LIMIT and arch.context_tile:
        return replace(arch, context_tile=None, learned_upsampling=False)
    return arch


# `--effort fast` fits as many steps as keep a Kodak encode within 20 s with
# two threads on a 2-core machine: 420 (19.2 s at most; 500 took up to 22 s)
# for BD-rate vs JPEG 4:2:0 +95.8 % (300 steps: +121.6 %);
# bench/results/kodak-fast-2026-11-30d. Since training steps got ~15-20 %
# cheaper (8dfbfa5), 540 steps (and refits of 90) take the time 420 took:
# kodim01-06 at 0.5 and 1 bpp, 29.9 s mean before, 29.5 s after on one
# (slow) machine, +0.80 dB at the request; over kodim01-12 at 0.25-1 bpp
# BD-rate vs JPEG 4:2:0 +80.4 % -> +65.0 %, 46 of 48 files better
# (bench/results/kodak-fast-2026-12-01). Since the training MLPs run in
# columns (dd84b4c, a step ~15 % cheaper), 650 steps (refits of 108) take
# about the time 540 took: BD-rate +65.0 % -> +49.0 %, +0.46 dB at the
# request, 45 of 48 files better, 46 within 5 % (was 44)
# (bench/results/kodak-fast-2026-12-01c). With the 8x8 context model of
# ARCHITECTURES["fast"], 770 steps (refits of 128) take about the time 650
# took with 16x16 (whole encodes alternated at 0.5 bpp: kodim01 42.5 ->
# 45.3 s, kodim03 41.2 -> 40.9 s on a slow, noisy hour;
# bench/results/encode-process-2026-12-02, -02b). Being short, it trains
# with Adam's second moment decaying at 0.95 (fit.SHORT_FIT_BETA2): BD-rate
# +49.0 % -> +29.2 %, +0.71 dB at the request, 48 of 48 files within 5 %
# (bench/results/kodak-fast-beta2-2026-12-01). Its latents learn at 0.15, not 0.1:
# a short fit wants them faster (at fixed lambdas, 420 steps: +0.38 dB at the
# same rate over 14 files of kodim01/02/03/05, 0.2 +0.34, 0.3 +0.15; slower
# ones lose, the finest level alone at 0.03 -0.44;
# bench/results/fixed-lambda-fast-2026-11-30). End to end, kodim01-12 at
# 0.25-1 bpp (bench/results/kodak-fast-2026-11-30i against -30f): BD-rate vs
# JPEG 4:2:0 +89.8 % -> +80.4 %, per-image BD-rate better on 9 of 12, 45 of 48
# files within 5 % (was 43); but PSNR moved to the requested rate
# (bench.compare_runs) changes -0.01 / +0.18 / -0.19 / -0.25 dB on average at
# 0.25 / 0.5 / 0.75 / 1 bpp (kodim03 and kodim04 -1 to -1.9 dB at the top),
# -0.07 dB over all 48, 21 better.
# `--effort max` trains four times as long as the default with the latents
# at a third of its learning rate: at a fixed lambda of 2.2e-3, kodim01 coded
# at 0.794 bpp / 28.34 dB, +0.60 dB over the default schedule at that rate
# (bench/results/fixed-lambda-2026-11-30; seeds 0 and 1 of the default
# differ by 0.2 dB, ad hoc); four times the steps at the default learning
# rate bought +0.13 dB, and a third of it in 4200 steps ~+0.1 dB (ad hoc,
# 2026-11-30). The slower latents settle sparser: 10.9 % of the
# full-resolution latents non-zero, 14.6 % in the default fit. End to end,
# kodim01-03 at 0.25 and 0.5 bpp: +0.49 dB over the previous max (8000 steps
# of 384-pixel crops at 0.1; 5 of 6 files better), 409-583 s
# (bench/results/kodak-max-2026-11-30b).
# The default effort fits 3000 steps below HIGH_RATE_BPP (4200 until
# 2026-12-02; `--effort max` still counts from those). Since the cheaper
# steps of 2026-12-01 (and, with fewer steps, the faster networks' learning
# rates of `fit.by_fit_length`), 3000 steps lost nothing on kodim01-12 at
# 0.25 and 0.5 bpp (+0.02 / +0.03 dB at the request), and 0.5 bpp encodes
# took 110 s instead of 140 s mean (bench/results/kodak-default-3000-2026-12-02,
# -02c). At 0.75 bpp they were 0.33 dB under the line of the 4200-step
# sweep's 0.5 and 1 bpp files (-02d), but more steps did not close that:
# ~4060 steps did 0.22 dB worse than 3000 on kodim01-06, in 36 % more time
# (bench/results/kodak-default-ramp-2026-12-02). At 1 bpp 3600 steps lost
# 0.16 dB (-02b), so targets from HIGH_RATE_BPP on keep HIGH_RATE_STEPS.
# Since 2026-12-05 the default effort's fits soft-round their noisy latents
# (fit.SOFT_ROUNDING): BD-rate -29.2 % -> -31.6 % over kodim01-12.
# Fits on format 1.0's context keep plain noise (`schedule_on`).
SCHEDULES: dict[str, Schedule] = {
    "fast": Schedule(iterations=743, lr_latent=0.15, soft_rounding=SOFT_ROUNDING, refit_promised=False,
                     own_rate_model=OWN_RATE_MODEL_FAST),
    "default": Schedule(iterations=2500, soft_rounding=SOFT_ROUNDING),
    "max": Schedule(iterations=16800, lr_latent=0.03),
}
# At 1 bpp and above the fit is step-limited: more of the latents carry
# detail, and the default schedule ends before they settle (kodim03 at 1 bpp:
# 6000 steps instead of 4200 gained 0.39 dB, ad hoc, 2026-11-29). Such
# targets get HIGH_RATE_STEPS (and their refits, a sixth of the fit, grow
# with them). Kodak kodim01-12 at 1 bpp, 5040 steps against 4200
# (bench/results/kodak-2026-11-29g against -29f): all twelve better,
# +0.31 dB on average against JPEG 4:2:0 at each file's own rate (from -0.12
# to +0.19 dB); encode 148 s mean, 171 s at most (was 120 / 140; one thread,
# two encodes side by side). Measured at 1 bpp only, hence the threshold.
HIGH_RATE_BPP = 1.0
HIGH_RATE_STEPS = 5040
# At those rates the full-resolution latents learn at 0.03, not 0.1: fast
# ones settle dense and costly, and the landing then raises lambda and loses
# PSNR chasing the rate (kodim05 at 1 bpp: the steered fit ended at 1.16 bpp
# / 28.48 dB at lambda 3.6e-3, where a fit at a fixed 1.5e-3 with the slow
# level wrote 1.085 bpp / 29.88 dB; ad hoc, bench.landing_trace and
# bench.fixed_lambda, 2026-12-04). Kodak kodim01-12 at 1 bpp: +0.78 dB at
# the request, 10 of 12 files better (kodim05 +1.87, kodim09 +2.96 and now
# within 5 %; kodim10 -0.20, kodim12 -0.29), the same encode time; BD-rate
# vs JPEG 4:2:0 over 0.25-1 bpp -23.7 % -> -25.1 %
# (bench/results/kodak-default-hr-finelr-2026-12-04). 0.05 there lost 0.16 dB,
# 4 of 12 better (bench/results/kodak-default-finelr005-2026-12-04/at-1-not-adopted).
HIGH_RATE_LR_LATENT_FINEST = 0.03
# HIGH_RATE_LANDING. From HIGH_RATE_BPP the default effort's fits also steer
# lambda net of their own last move, at the timed gain
# (`Schedule.compensated_steering`, fit's TIMED STEERING), and an untimed
# landing stops at the first file within the rate promise, cut to the rate
# if it is over (`Schedule.refit_promised`). kodim01-12 at 1 bpp, the soft-
# rounding fit alone, one thread, traced with `bench.landing_trace`
# (bench/results/high-rate-landing-2026-12-05): with the plain steering 8 of
# 12 fits ended outside the promise (busy images 15-25 % over, as the rate
# fell slower than the trend read after each move; kodim03 and kodim09 ~9 %
# under), and every landing ran two refits or more, ~37 s of a ~156 s
# encode. Steered net of its moves, 9 of 12 fits kept the promise and the
# returned files gained +0.08 dB at the request (7 of 12 better; kodim06
# +0.36, kodim11 +0.34, kodim05 +0.20; the worst -0.05). There the two
# polishing refits bought nothing: the first refit of each of those nine
# wrote a file 7-20 % larger than the fit's, whatever lambda did, and eight
# landings returned the fit's own file, the ninth (kodim07) a cut to the
# rate scoring the same at the request. Without them the same files came
# in 131.6 s mean instead of 159.7 (117.6-126.5 s for the nine). The
# whole encode, the pair (`encode_side_by_side`), alternated with the old
# rules image by image: -0.01 dB at the request, 7 of 12 better, 12 of 12
# within 5 %, 182.0 -> 160.5 s mean on an Intel Xeon family 6. It ends when
# both fits have landed, and the plain-noise fit still refit on several
# images; where its refits had won (kodim07, 0.61 dB over the soft fit's
# file) the new landing lost that. Since then those encodes fit once
# (SINGLE_FIT_FROM_HIGH_RATE).
# Since 2026-12-06 these rules hold from FIRM_LANDING_BPP (below).
# From MID_RATE_BPP up to HIGH_RATE_BPP default encodes slow the
# full-resolution latents less, to 0.05: at 0.5 bpp on kodim01-12 +0.25 dB at
# the request, 8 of 12 files better (kodim12 +1.25, kodim03 +0.97, kodim09
# +0.78; kodim08 -0.35, kodim05 -0.28, kodim07 -0.24), where 0.03 gained as
# much (+0.24) but spread wider (kodim07 -0.84). With the fast level the
# probe reads a rate that later collapses (kodim12: 1.26 latent bpp at step
# 416; the steering raised lambda 2.3x and the fit ended at 0.30 bpp, 40 %
# under; with 0.03 the probe read 0.36 and the fit held ~0.5 throughout;
# bench.landing_trace, bench/results/quality-vs-time-v3-2026-12-04). At 0.25
# bpp slow latents lose (0.05: -0.07 dB, 3 of 12 better; 0.03: -0.15), hence
# the threshold. At 0.75 bpp +0.71 dB, 9 of 12 better (kodim12 +3.21,
# kodim05 +2.46: both had collapsed under their own 0.5 bpp files; kodim10
# -0.36). bench/results/kodak-default-finelr005-2026-12-04, -0.75-2026-12-04.
# Short fits lose with slow latents (see "fast" above), so in a fit its
# deadline cuts the level speeds back up, to 0.1 at 70 % of the schedule or
# less (`fit.cut_fit_latent_lr_scale`): kodim01-12 at 0.5 bpp under 60 and
# 120 s +0.25 dB at the request, 18 of 24 better, every file within 5 %
# (bench/results/quality-vs-time-cutfinest-2026-12-04); 0.05 in every timed
# fit had left a 30 s kodim08, cut to ~45 %, 14 % under the rate
# (bench/results/quality-vs-time-v3-2026-12-04/timed-finelr005-not-adopted).
MID_RATE_BPP = 0.5
MID_RATE_LR_LATENT_FINEST = 0.05
# FIRM_LANDING_BPP. From this rate up, and not only from HIGH_RATE_BPP, the
# default effort's fits land by HIGH_RATE_LANDING's rules. Traced on
# kodim01-12, the soft-rounding fit alone beside main's (bench.landing_trace,
# bench/results/landing-below-1bpp-2026-12-06): at 0.75 bpp +0.14 dB at the
# request, 9 of 12 better, none worse than -0.01 dB. Smooth images whose fit
# ended just over 5 % under (kodim03, 07, 10) refit four times there, each
# refit raising PSNR (kodim03 37.27 -> 37.98 dB, 4.4 % over): 125-128 s
# encodes, where main had stopped at the fit's file after two refits whose
# cuts to the rate scored lower. At 0.5 bpp -0.07 dB, 5 of 12 better: the
# compensated steering raised kodim08's lambda past DROP_FINEST_ABOVE, the
# fit dropped its full-resolution latents and ended at 0.32 bpp, and the
# landing's file lost 1.14 dB; hence the threshold. The whole encode, the
# pair at 0.75 bpp, alternated image by image with main on an Intel Xeon
# family 6: +0.14 dB at the request, 9 of 12 better (the worst -0.02 dB), 12
# of 12 within 5 %, 106.3 -> 103.4 s mean, three encodes over 120 s (those
# refits; 125-139 s) where one was (123 s); since FIRM_REFITS none. Not
# measured between 0.75 and 1 bpp, nor under a time limit (timed landings
# keep their refits anyway). Since 2026-12-06 (evening) from 0.5 bpp, with
# the drop held to the first half of the fit (fit.FIRM_DROP_UNTIL) and not
# made by the landing's first refit (FIRM_REFITS): kodim08's soft fit then
# ended at 0.557 bpp with every level and landed at 25.35 dB at the request
# (main 25.27). With plain noise as the pair's second fit the change only
# saved time (the pair +0.00 dB, 5 of 12 better): the plain fit lost under
# these rules (kodim11 -0.7, kodim12 -0.9 dB); with a second draw of the
# soft fit it gained (SEED_PAIR). Since 2026-12-06 (second session) from
# 0.25 bpp, the seed pair with it: kodim01-12 at 0.25 bpp, whole encodes
# alternated image by image with the tree before on an Intel Xeon family 6,
# +0.23 dB at the request, 10 of 12 better (kodim12 +0.93, kodim05 +0.78;
# kodim03 -0.34), 12 of 12 within 5 %, 98.6 -> 77.7 s mean
# (bench/results/firm-landing-025-2026-12-06). And from 0.15 bpp, for the
# time: there +0.00 dB, 6 of 12 better, 92.7 -> 74.5 s mean
# (bench/results/firm-landing-015-2026-12-06). Not measured below 0.15 bpp.
FIRM_LANDING_BPP = 0.15
RATE_TOLERANCE = 0.02  # the file may miss the requested size by this fraction
# With the 1 % learning-rate floor (fit.LR_FLOOR) refits cut the rate more
# readily than they add it back: kodim02 and kodim12 at 0.5 bpp went over,
# over, 5 % under and, after a refit that lowered lambda 30 %, still 5 %
# under when three refits ran out (bench/results/kodak-2026-11-29e). A fourth
# landed them at 0.502 / 33.53 dB and 0.501 / 33.61 dB (were 0.473 / 33.41
# and 0.474 / 33.46; ad hoc, 2026-11-29). Only encodes still off after three
# refits run it.
MAX_REFITS = 4
# Every encode with a rate target ends with at least this many refits, even
# when the fit itself landed (but see HIGH_RATE_LANDING: untimed encodes
# from FIRM_LANDING_BPP stop at a fit within the promise): a refit is the
# cheapest quality there is. At a fixed lambda of 3e-4, kodim12 fitted for
# 4200 steps with the learning rate decaying to 1 % (fit.LR_FLOOR) reached
# 1.421 bpp / 36.23 dB, and one refit
# (700 steps, restarting at REFIT_LR_PEAK) took it to 1.432 bpp / 36.69 dB,
# where 1800 more steps of the fit itself bought ~0.5 dB (ad hoc, 2026-11-29).
# End to end, files that landed without a refit were the ones that fell
# behind (kodim04 at 1 bpp: 34.41 dB, against 34.69 after one refit).
MIN_REFITS = 1
# Training aims this far above the requested rate: the rounding dead zone
# (`_shrink_to`) can only take bits away, and does so precisely and in about a
# second, while a refit that adds bits costs minutes. The predicted lambda
# (`fit.RATE_MODEL`) misses by ~30 % in rate either way; misses above
# DEAD_ZONE_MAX_OVERSHOOT are refit.
AIM_ABOVE = 0.06
MAX_DEAD_ZONE = 0.45
# The dead zone is cheap but blunt: it cuts the latents that barely earned
# their integer, not those that buy least. Cutting 35 % with it cost kodim03
# at 0.5 bpp 2.5 dB (30.4 dB; refit at a higher lambda instead: 33.0 dB;
# ad-hoc runs, 2026-11-25). Larger overshoots go to such a refit.
# Ad-hoc landings of steered fits (2026-11-29): a 0.200 dead zone taking the
# last 8.5 % cost kodim12 at 0.5 bpp 2.2 dB (33.53 -> 31.30 dB) where refits
# instead landed it at 33.35 dB, and kodim12 at 1 bpp gained 1.07 dB from one
# refit (34.79 -> 35.86) that a 4 % dead zone had cost 0.3. Only the last
# few percent go to the dead zone.
DEAD_ZONE_MAX_OVERSHOOT = 0.03
# The rate promise: a file must not end further than this above the request.
# Short fits (`--effort fast`, then 300 steps, 60-step refits that may raise lambda
# only 3x) cannot always shed the rate, and then even the widest ordinary
# dead zone is not enough: kodim08 at 0.25 bpp ended at 0.55 bpp, kodim05 at
# 0.54 (bench/results/kodak-fast-2026-11-29). As a last resort, when refits
# are spent, the dead zone may widen up to RESCUE_DEAD_ZONE (every latent
# shrinks towards zero) so the file keeps the rate and gives up quality
# instead. The rescue never runs for a file within the promise, so encodes
# that met it are unchanged.
RATE_PROMISE = 0.05
RESCUE_DEAD_ZONE = 4.0
RESCUE_TRIES = 3
# Once a file within the rate promise exists, the landing ends after this
# many refits and keeps the best file it made. Refits past the second chased
# the last percent at high rates, where a refit keeps adding bits whatever
# lambda says: kodim09 at 2 bpp went 1.58 (the fit), 1.70, 1.92, 2.14 and
# 2.24 bpp in four refits (39.91 dB), and the dead zone cut the 12 % overshoot
# for 3 dB (36.88 dB), where the second refit's file, 3.9 % under, had
# 39.13 dB; the encode took 164-182 s on two threads, the only Kodak encode
# over the 180 s budget (bench/results/kodak-2threads-2026-11-29).
REFITS_ONCE_PROMISED = 2
# Files of slightly different sizes are compared by their PSNR moved to the
# requested rate along this slope: dB per unit of ln(rate), the mean over
# Kodak kodim01-12 between 0.5 and 1 bpp (4.3) and 1 and 2 bpp (4.5)
# (bench/results/kodak-2026-11-29h). Within the promise that is +-0.22 dB.
PSNR_PER_LN_RATE = 4.5
DEAD_ZONE_BISECTIONS = 10
# SHRINK_BY_COST. Format 2.0 files are cut by moving the latents that cost
# least distortion per bit saved one step towards zero (`inrcodec.train.shrink`),
# not by the dead zone. From the same trained fits (default effort, fixed
# lambdas, kodim11/03/01/05; bench/results/shrink-cut-2026-12-03), cutting
# 3 / 6 / 10 % of the latent bits cost less picture than the dead zone on
# every fit: +0.04 to +0.19 dB at 3 %, +0.07 to +0.46 at 6 %, +0.29 to +1.53
# at 10 % (where the dead zone could not cut kodim11 at all), and left the
# files about where a fit trained for the smaller rate would be (-0.03 to
# +0.17 dB from the uncut file's PSNR moved along PSNR_PER_LN_RATE). Timed landings end that way
# when the deadline leaves no refit: kodim03 and kodim11 at 0.5 bpp under 60 s
# had lost 1-2.4 dB to a 9-18 % dead zone. Under format 1.0's checkerboard
# the ranking first failed: the latents it moved included the anchors that
# their neighbours are predicted from, and moving them raised the rate. With
# the anchors left alone (`shrink.shrink_costs`), `--effort fast` fits of
# kodim11 and kodim03 cut 3-10 % for +0.09 to +0.73 dB over the dead zone
# (+0.43 dB over 5 cuts; the same folder, `fast-nonanchor/`).
# RANKED_CUT_DEADLINE. Under a time limit, format 1.0 files (every effort
# under 30 s, `--effort fast` under any) have too little time for the ranked
# cut, which costs more than the dead zone (the ranking, two more rate
# estimates) in the 5 % of the limit the landing leaves: at
# 10 s on kodim01-12 at 0.5 bpp, alternated image by image with the dead
# zone, +0.32 dB at the request but 2 of 12 encodes over their limit (10.3,
# 10.5 s; bench/results/quality-vs-time-v2-curve-2026-12-03/ranked-1.0-10s).
# Timed 1.0 landings keep the dead zone.
# `_shrink_by_cost` bisects how many latents move to 1/2**this of the
# candidates (~10-40 latents on a Kodak file, a few dozen bits).
SHRINK_BISECTION_RESOLUTION = 11
# CUT_CANDIDATE_OVER. An untimed landing of a format 2.0/3.0 file (or one
# after a fit the deadline did not cut, `Landing.timed_rules`) also
# cuts (`_shrink_by_cost`) each file that ends over the rate promise, by up to
# this much, to the requested rate, and keeps the cut file among the
# candidates it returns the best of. The landing itself goes on as it would
# without them, from the uncut file (the cuts do not count as files within
# the promise for REFITS_ONCE_PROMISED), so it returns a file that scores at
# least as well as before, for a second or two per cut. Refits after a fit
# land unevenly: kodim03 at 0.5 bpp (default effort, format 3.0) wrote 0.466
# bpp / 33.86 dB after the fit, then 0.548 / 34.40, 0.536 / 34.61 and 0.531
# / 34.33 from refits over the promise, and returned the fourth refit's
# 0.503 / 34.10; at 3000 steps the refits wrote 0.546 / 34.83 and 0.542 /
# 35.09 and the fit's 0.478 / 34.20 was returned
# (bench/results/kodak-default-v3-2026-12-03, landing traces). A ranked cut
# of up to 10 % leaves a file about at its PSNR moved along PSNR_PER_LN_RATE
# (see SHRINK_BY_COST), 0.3-0.5 dB over what was returned there.
CUT_CANDIDATE_OVER = 0.15
REFIT_ELASTICITY = 0.6  # -d ln(rate) / d ln(lambda) of a trained fit, typical on Kodak
# A refit is a short continuation of the fit at the moved lambda, held: noise
# for most of it, then straight-through rounding, at half the fit's peak
# learning rate. Refits used to be all straight-through at 0.3x with lambda
# steered on the measured rate; they could not add bits (a latent in the zero
# bin gets no rounding gradient), and the rate they measured rose mid-refit
# and fell back at the end, so the controller steered the wrong way. Ad-hoc
# landings from the same trained fits (2026-11-25), old -> new: kodim05 at
# 0.5 bpp 0.413 bpp / 23.06 dB -> 0.500 / 23.88 (one refit, not three);
# kodim10 at 1.0 0.921 / 34.12 -> 0.999 / 35.00; kodim04 at 0.5 0.500 / 31.89
# -> 0.500 / 31.96; kodim06 at 1.0 0.999 / 30.57 -> 0.985 / 30.87; landing
# time 45..62 s -> 21..38 s. (Those runs moved every refit by 0.6; see
# `refit_elasticity` for what replaced it.)
MIN_SECANT_STEP = 0.05  # ln lambda; smaller moves say too little about the slope
# A secant outside this is noise, not slope (kodim10 at 1 bpp: a floor of 0.2
# overshot 9 % and cost 0.2 dB in the dead zone).
MIN_ELASTICITY, MAX_ELASTICITY = 0.3, 1.5
# A refit after a long fit answers a lambda move only in part; the rest
# shows in the next refit, so a low secant through the fit's file and the
# first refit's under-reads the slope the next refit will have, and its move
# goes too far. Traced (`bench.landing_trace`, `--effort max`, 0.5 bpp,
# under 150 s, 2026-12-02): kodim03's refits answered at 0.31 and then 0.54
# (file 8.9 % under), kodim01's at 0.27 and then 0.46 (4.1 % under);
# kodim08's at 0.20 both times. Such secants are shrunk towards
# REFIT_ELASTICITY: the weighted geometric mean, the secant first raised to
# LAGGING_SECANT_FLOOR (a rate that rose says nothing about the slope).
# Short untimed fits, whose rate still drifts, move part way instead
# (SHORT_FIT_REFIT_GAIN). `--effort max` at 0.5 bpp on six Kodak images,
# alternated with the encoder before: under 150 s 6 of 6 files within 5 %
# (was 5: kodim03 5.8 % under), +0.12 dB at the request, kodim03 +0.50
# (bench/results/quality-vs-time-max150-lagging-2026-12-02); under 300 s
# 6 of 6 (kodim03 was 8 % under), +0.07 dB (-max300-lagging-2026-12-02).
# The default effort at 0.5 bpp on kodim01-12: untimed +0.01 dB
# (kodak-default-lagging-2026-12-02), under 30 s +0.07 dB
# (quality-vs-time-30s-lagging-2026-12-02). The weight was not tuned.
LAGGING_SECANT_WEIGHT = 0.5
LAGGING_SECANT_FLOOR = 0.1
# A short fit (at most fit.SHORT_FIT_STEPS, `--effort fast`) ends before its
# rate settles: it keeps falling through the refits whatever lambda does, and
# a move of lambda shows over several refits, so full moves overshoot. Traced
# ad hoc (2026-11-30), kodim12 at 0.75 bpp, `--effort fast`: 0.884 bpp after
# the fit, then 0.844 (lambda raised 1.3x), 0.683 (1.5x more), 0.584 and
# 0.581 (lowered 1.3x and 2.9x): 23 % under. Refits after such fits move
# lambda this fraction of the way (untimed encodes only: under a deadline
# there is seldom time for more than one refit). Kodak kodim01-12 at
# 0.25-1 bpp (bench/results/kodak-fast-2026-11-30e against -30d): 44 of 48
# files within 5 % either way, but the misses half as deep (at worst -11 %,
# was -23 %); BD-rate vs JPEG 4:2:0 +95.8 % -> +92.3 %.
# Undershoots move half way too, although the drift works against them and
# five of 48 such files still end 8-11 % under: moving the whole way after
# every file further under than the rate promise landed all 48 within 5 %,
# but on the 30 files it changed the bits it added late bought nothing
# (-0.27 dB at the requested rate on average, BD-rate +89.8 % -> +97.4 %;
# bench/results/kodak-fast-2026-11-30h, and -30g for every undershoot), and
# moving the whole way only in the last refit landed none of the five (ad
# hoc, 2026-11-30). A file under the request at the same quality costs the
# user nothing; a file at the request with a worse picture does.
SHORT_FIT_REFIT_GAIN = 0.5
# Busy images (a JPEG at quality 30 over this many bpp, `complexity.jpeg_bpp`)
# in short untimed fits (and timed ones, below) take the rate model's whole
# correction at the probe and steer at full strength (`Fitter.full_aim`),
# and a file within the rate promise after such a fit is kept without a
# polishing refit. The model, fitted on long fits, aims short ones too high:
# a busy image's latents are pruned early and the steering brings lambda
# back down, which bought kodim01 / 05 / 08 +0.69 / +0.53 / +0.53 dB at the
# request over 0.25-1 bpp; smooth images lost (-0.16 to -0.47 dB;
# bench/results/kodak-fast-fullaim-2026-12-01, every image fully aimed). At
# quality 30 those three cost 0.91-1.03 bpp, the other nine 0.44-0.73
# (bench/results/rate-model-fast-2026-12-01).
# Kodak at 0.25-1 bpp, only those three changed: BD-rate vs JPEG 4:2:0
# +29.2 % -> +27.1 % (bench/results/kodak-fast-busyaim-2026-12-02). Encodes
# under a time limit (whatever their effort: the deadline decides the fit's
# length) aim busy images fully too; they already steered at full strength.
# kodim01/05/08 at 0.5 bpp under 30 s: PSNR +0.5 / +1.1 / +0.8 dB over the
# better of two runs without, every file within 3 % of the rate; under 60 s
# +0.2 / +0.4 / +0.2 dB over one run; under 10 s within the runs' noise
# (bench/results/quality-vs-time-busyaim-2026-12-02).
BUSY_JPEG_BPP = 0.8
# A short fit that ends this far over the request drops its full-resolution
# latents at the first refit, whatever lambda is: its refits (lambda at most
# 3x, answered at elasticity ~0.3) cannot take back more than ~30 %, and the
# rescue dead zone then cuts every latent. kodim08 at 0.75 bpp, `--effort
# fast`: 1.47 bpp after the fit, refits to 1.26, rescued at a 0.65 dead zone
# to 16.3 dB; dropping the level at the first refit landed it at 21.8 dB.
# Kodak kodim01-12 at 0.25-1 bpp (bench/results/kodak-fast-2026-11-30f
# against -30e): 7 of 48 files changed, kodim08 at 0.75 / 1 bpp +5.5 / +4.4
# dB, kodim05 at 1 bpp +1.4 dB, kodim01 at 1 bpp -0.9 dB and 8.7 % under;
# BD-rate vs JPEG 4:2:0 +92.3 % -> +89.8 %.
SHORT_FIT_DROP_OVERSHOOT = 0.3
REFIT_STE_FRACTION = 0.3
REFIT_LR_PEAK = 0.5
# FIRM_REFITS. A refit adds bits of its own: restarting the learning rate
# lets latents leave the zero bin whatever lambda says. Traced after the
# soft-rounding fit (`bench.landing_trace`, one thread, 2026-12-05/06), a
# refit ended ~6 % larger (in ln, 0.05-0.06) than its lambda move alone
# explains at elasticity 0.6 on the busy images at 1 bpp, and at an
# unchanged lambda 9-12 % larger on smooth ones at 0.75 bpp. The firm
# landing (HIGH_RATE_LANDING's rules, untimed, from FIRM_LANDING_BPP)
# counts that drift in after a long fit (REFIT_DRIFT, also out of the
# secant of `refit_elasticity`), aims at the request itself rather than
# AIM_ABOVE over it (it stops at the first file within the promise, so a
# refit should end there, not in the cut), and restarts at
# FIRM_REFIT_LR_PEAK, which adds less and keeps the fit's picture (kodim03
# at 0.75 bpp, a refit at the fit's lambda: 0.710 -> 0.805 bpp and 37.27 ->
# 37.20 dB at 0.5; 0.742 bpp and 37.43 dB at 0.25). Traced on the nine landings that refit (kodim01,
# 05, 08 at 1 bpp; kodim01, 03, 05, 07, 08, 10 at 0.75 bpp): at 1 bpp one
# refit instead of two and +0.11 dB at the request (all three better); at
# 0.75 bpp -0.13 dB (-0.31 to +0.03): the three smooth images whose fit
# ended ~5.5 % under had run all four refits, each adding PSNR, in 125-128
# s of a one-thread trace, and now land in one, in 78-81 s (with the drift
# alone, restarting at 0.5: -0.20 dB at 0.75 bpp, -0.05 at 1 bpp). Whole
# encodes alternated image by image with the rules before, on an Intel Xeon
# family 6: kodim01-12 at 0.75 bpp (the pair) -0.06 dB at the request, 12
# of 12 within 5 %, 106.3 -> 90.7 s mean, none over 120 s (were three,
# 131-138 s); the three 1 bpp encodes that refit +0.13 dB, 148.8 -> 124.0 s
# (bench/results/firm-refits-2026-12-06). Refits after short fits (at most
# SHORT_FIT_STEPS, only with `EncodeOptions.iterations` at the default
# effort) keep their old rules: their rate still falls through the refits
# (SHORT_FIT_REFIT_GAIN), and a 300-step fit of a small test image at 3 bpp
# ran out of refits 10 % under with these.
REFIT_DRIFT = 0.06
FIRM_REFIT_LR_PEAK = 0.25
CONTAINER_BYTES = 100  # signature, framing and HEAD, close enough to steer by
# Under a time limit T the fit ends by FIT_SHARE_OF_TIME * T and the landing
# (refits, dead zone, file writes) by LANDING_SHARE_OF_TIME * T; the rest is
# the final render that measures PSNR. A refit runs only when at least
# MIN_TIMED_REFIT_STEPS fit in what is left after reserving the time of
# FILES_AFTER_A_REFIT file writes (its own file, a dead-zone file, the
# render that scores it). Refits used to ignore the limit: under 10 s the fit
# stopped in time and then a 700-step refit ran, 20 s in all (kodim03 at 0.5
# bpp, ad hoc, 2026-11-30; bench/results/quality-vs-time-2026-11-30).
# A refit cut to a small part of its planned length by the deadline does
# harm: it restarts the learning rate and ends before the latents settle
# again. kodim06 at 0.5 bpp, `--effort max` under 300 s: the fit (cut to
# 11707 of 16800 steps) ended 34 % over, two 1951-step refits left it at
# 0.606 and 0.619 bpp, and a third cut to 240 steps ended at 0.890 bpp, from
# which the rescue dead zone made 17.69 dB
# (bench/results/quality-vs-time-2026-12-02b). A refit that cannot run at
# least MIN_TIMED_REFIT_SHARE of its planned steps is not run.
FIT_SHARE_OF_TIME = 0.7
LANDING_SHARE_OF_TIME = 0.95
MIN_TIMED_REFIT_STEPS = 30
MIN_TIMED_REFIT_SHARE = 0.25
FILES_AFTER_A_REFIT = 3


@dataclass
class EncodeOptions:
    """User-facing encoder settings (see `inrcodec.encode`)."""

    bpp: float | None = 0.5
    lmbda: float | None = None
    effort: Effort = "default"
    device: str = "cpu"
    seed: int = 0
    time_limit: float | None = None
    iterations: int | None = None  # overrides the effort's step count (tests)


@dataclass
class EncodeResult:
    """The bitstream and what the decoder will see."""

    data: bytes
    bpp: float
    psnr: float
    seconds: float
    iterations: int
    lmbda: float
    width: int
    height: int


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (8-bit RGB, all channels)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _weight_bits_guess(arch: Architecture) -> float:
    n_params = sum((a + 1) * b for ws in (arch.synth_widths(), arch.arm_widths()) for a, b in zip(ws, ws[1:]))
    up_taps_bits = 16 * UP_TAPS * (arch.n_levels - 1) if arch.learned_upsampling else 0  # i16 in the header
    return 7.0 * n_params + up_taps_bits


def rate_target(bpp: float, n_pixels: int, arch: Architecture) -> RateTarget:
    """What training aims at for a whole-file rate: latent bits per pixel, AIM_ABOVE high.

    `arch` is the effort's (ARCHITECTURES): its networks' bits come off the budget.
    """
    overhead = CONTAINER_BYTES * 8 + _weight_bits_guess(arch)
    latent_bpp = max(bpp * n_pixels - overhead, 0.02 * bpp * n_pixels) / n_pixels
    return RateTarget(latent_bpp * (1 + AIM_ABOVE), initial_lambda(bpp))


def schedule_for(effort: Effort, bpp: float | None) -> Schedule:
    """The training schedule of an effort level for a target rate (None: fixed lambda)."""
    schedule = SCHEDULES[effort]
    if effort != "default" or bpp is None:
        return schedule
    if bpp >= HIGH_RATE_BPP:
        schedule = replace(schedule, iterations=HIGH_RATE_STEPS, lr_latent_finest=HIGH_RATE_LR_LATENT_FINEST)
    elif bpp >= MID_RATE_BPP:
        schedule = replace(schedule, lr_latent_finest=MID_RATE_LR_LATENT_FINEST)
    if bpp >= FIRM_LANDING_BPP:  # HIGH_RATE_LANDING's rules (see FIRM_LANDING_BPP)
        schedule = replace(schedule, compensated_steering=True, refit_promised=False)
    return schedule


def schedule_on(schedule: Schedule, arch: Architecture) -> Schedule:
    """The schedule as a fit on `arch` runs it: on format 1.0's context, plain noise.

    Those fits (under a time limit below WAVEFRONT_MIN_TIME_LIMIT) keep plain
    noise: soft rounding never paid there, end to end in 2026-11
    (fit.SOFT_ROUNDING) nor under 10 s at 0.5 bpp on kodim01-12 (28.43 ->
    27.93 dB, 9 of 12 worse), where under 30 s, on format 3.0, it gained
    (30.66 -> 30.76 dB, 7 of 12 better;
    bench/results/kodak-default-soft-2026-12-05/timed).
    """
    return schedule if arch.context_tile else replace(schedule, soft_rounding=None, own_rate_model=None)


def new_model(height: int, width: int, schedule: Schedule, arch: Architecture,
              device: torch.device | str = "cpu") -> CocoNet:
    """A CocoNet of `arch` (the effort's, ARCHITECTURES) to fit.

    Random networks, or the pretrained ones if the schedule says so.
    """
    model = CocoNet(height, width, arch)
    if schedule.pretrained:
        start_from_pretrained(model)
    return model.to(device)


def encode_array(pixels: np.ndarray, opts: EncodeOptions, progress: ProgressFn | None = None) -> EncodeResult:
    """Encode a uint8 [H, W, 3] image into `.coco` bytes.

    With `opts.bpp` the whole file (header included) lands within
    RATE_PROMISE (5 %) of bpp * H * W bits; with `opts.lmbda` lambda is
    fixed instead.
    """
    start = time.monotonic()
    # An infinite time limit is none (it used to overflow planning the steps).
    limit = opts.time_limit if opts.time_limit is not None and math.isfinite(opts.time_limit) else None
    if opts.effort == "fast":
        return _encode_once(pixels, opts, schedule_for(opts.effort, opts.bpp), start, limit, progress)
    timed = limit is not None and limit < GENEROUS_TIME_LIMIT
    groups = max_candidates(opts.bpp, timed) if opts.effort == "max" else (default_candidates(opts.bpp, timed),)
    return _best_of_candidates(pixels, opts, groups, start, limit, progress)


# The default effort fits twice, with soft rounding and with plain noise
# (`default_candidates`; below HIGH_RATE_BPP, see SINGLE_FIT_FROM_HIGH_RATE;
# untimed from FIRM_LANDING_BPP two draws of the soft fit, see SEED_PAIR),
# and keeps the better file (`candidate_rank`).
# Neither wins everywhere: of kodim01-12's files at 0.25-1 bpp soft rounding
# won 31 of 48, kodim03 lost at every rate, and a file moves by up to
# +-0.5 dB between the two. With two or more torch threads the fits run at
# once, half the threads each (`side_by_side`); with one thread, or under a
# time limit below PAIR_MIN_TIME_LIMIT (below), only the first fit runs. A fit gains little from a second
# thread (~1.3x on an AMD EPYC family 26, 2026-12-04; nothing on a family 25
# on 2026-12-05: a 1 bpp encode of kodim01 took 148.7 s alone with two
# threads, 147.0 s with one beside another encode), so the second fit costs
# little wall time: a whole `inrcodec encode` of kodim01 at 0.5 bpp, 70.8 ->
# 78.9 s. Kodak kodim01-12 at 0.25-1 bpp: BD-rate vs JPEG 4:2:0 -31.6 % ->
# -32.9 %, +0.10 dB at the request, 48 of 48 files within 5 %
# (bench/results/kodak-default-pair-2026-12-05). Under a time limit each
# fit plans its steps from its own speed beside the other; against one fit
# with two threads, kodim01-12 at 0.5 bpp, +0.04 / +0.01 / +0.09 dB at the
# request under 30 / 60 / 120 s, 12 of 12 files within 5 % at each, in the
# same time (bench/results/quality-vs-time-pair-2026-12-05).
# Under a time limit shorter than PAIR_MIN_TIME_LIMIT the default effort
# fits once with every thread: the limit cuts both fits of a pair short of
# their schedule, and one fit with two threads makes more steps than either
# fit of the pair wherever a second thread speeds a fit up. kodim01-12 at
# 0.5 bpp on an Intel Xeon family 6, where two threads step a fit ~1.33x
# faster (20.3 -> 15.3 ms, ad hoc): under 30 s **+0.87 dB** at the request
# (30.47 -> 31.34 dB, 12 of 12 better; 1750 steps against ~1070 per fit of
# the pair), under 60 s -0.04 dB (4 of 12 better: the pair's fits come near
# their 2500 steps there and the better of two wins); 12 of 12 within 5 %
# (bench/results/quality-vs-time-single-2026-12-05). On an AMD EPYC family
# 25, where a second thread buys nothing, one fit with two threads scored
# -0.04 / -0.01 dB against the pair under 30 / 60 s
# (bench/results/quality-vs-time-pair-2026-12-05). Between 30 and 60 s
# nothing was measured: the threshold splits it. It is at least
# WAVEFRONT_MIN_TIME_LIMIT, so a pair never fits on format 1.0's context,
# where both candidates would be the same plain-noise fit (`schedule_on`).
PAIR_MIN_TIME_LIMIT = 45.0


# GENEROUS_TIME_LIMIT. A time limit is a bound, not a way of encoding: a
# fit the deadline does not cut short steers (`Fitter.run`, FIRM_DROP_UNTIL)
# and lands (`Landing.timed_rules`: stop at the first file within the
# promise, the firm refits, the cut candidates) as an untimed fit does, the
# deadline still bounding every refit; and under limits from this one the
# default effort fits the untimed pair (SEED_PAIR from FIRM_LANDING_BPP).
# Under 120 s at 0.5 bpp the timed rules had written worse files than an
# untimed encode, which takes ~75 s there. kodim01-12 at 0.5 bpp under 120
# s, alternated image by image with the timed rules on an Intel Xeon family
# 6: +0.21 dB at the request, 11 of 12 better (kodim07 +0.73, kodim10 +0.62;
# kodim09 -0.12), 31.74 -> 31.90 dB mean, 89.0 -> 73.9 s mean, 12 of 12
# within 5 % (bench/results/generous-limit-2026-12-06). Under shorter limits
# the pair's fits are cut (kodim08's under 60 s: 1767 of 2500 steps), and
# the seed pair lost kodim08 by 1.2 dB where the plain-noise fit had
# covered a bad landing of the soft one
# (bench/results/timed-seed-pair-2026-12-06-not-adopted): they keep soft
# rounding and plain noise. A machine slow enough for the deadline to cut
# the fits under 120 s gets the timed rules for those fits but the seed
# pair; not measured.
GENEROUS_TIME_LIMIT = 120.0


# SINGLE_FIT_FROM_HIGH_RATE. From HIGH_RATE_BPP the default effort fits
# once, with soft rounding and every thread: under the landing rules of
# HIGH_RATE_LANDING the plain-noise fit no longer won there (of kodim01-12's
# pair files at 1 bpp, ten were the soft fit's, and the other two scored
# 0.01-0.02 dB over it at the request), but the pair's encode waited for it:
# 160.5 s mean against 131.6 s for the soft fit alone beside another, on an
# Intel Xeon family 6 (bench/results/high-rate-landing-2026-12-05). Alone
# it also gets both threads (~1.33x per step there). kodim01-12 at 1 bpp,
# alternated image by image with the pair on such a machine: 156.8 -> 100.1 s
# mean (84-100 s but for three busy images that refit, 120-128 s), +0.01 dB
# at the request, 7 of 12 better, 12 of 12 within 5 %
# (bench/results/high-rate-single-fit-2026-12-06).
# SEED_PAIR. Untimed from FIRM_LANDING_BPP the pair's second fit is the
# first one again with another seed (`Schedule.seed_offset`: other crops,
# noise and starting networks), not plain noise. One fit's draw moves its
# file by a few tenths of a dB: kodim01-12 at 0.5 bpp, the soft fit with
# seed 1 against seed 0 under the landing rules before FIRM_LANDING_BPP
# came down to 0.5, from -0.18 to +0.62 dB at the request (kodim07), +0.11
# dB on average; the pair of those two draws scored about what the
# soft-and-plain pair did (+0.05 dB, 4 better, 4 worse). Under the firm
# landing the plain fit lost (above) while a second soft draw won 8 of 12
# times. Traced on kodim01-12, one thread per fit as the pair's workers
# run, the pair of draws against the soft-and-plain pair before: at 0.5
# bpp (with FIRM_LANDING_BPP at 0.5) +0.20 dB at the request, 12 of 12
# better, the slower fit 103 -> 79 s; at 0.75 bpp +0.11 dB, 6 better and
# none worse, the same time. Whole encodes at 0.5 bpp, alternated image by
# image with the tree before on an Intel Xeon family 6: +0.19 dB, 12 of 12
# better, 89.1 -> 73.5 s mean; BD-rate vs JPEG 4:2:0 -33.2 % -> -35.0 %
# (bench/results/seed-pair-2026-12-06). Encodes under limits short of
# GENEROUS_TIME_LIMIT keep plain noise (see there).
def default_candidates(bpp: float | None, timed: bool = False) -> tuple[Schedule, ...]:
    """The default effort's schedules, in order of preference: soft rounding, then plain noise or a second draw.

    From HIGH_RATE_BPP the soft-rounding fit alone (SINGLE_FIT_FROM_HIGH_RATE);
    from FIRM_LANDING_BPP, soft rounding again with another seed (SEED_PAIR)
    unless `timed` (under a time limit short of GENEROUS_TIME_LIMIT).
    """
    schedule = schedule_for("default", bpp)
    if bpp is not None and bpp >= HIGH_RATE_BPP:
        return (schedule,)
    if not schedule.refit_promised and not timed:  # the firm landing's schedule (FIRM_LANDING_BPP)
        return schedule, replace(schedule, seed_offset=1)
    return schedule, replace(schedule, soft_rounding=None)


# `--effort max` encodes the image with the default effort's fits and with
# its own long one (SCHEDULES: four times as long, every latent at 0.03),
# and keeps the best file (`candidate_rank`). On format 3.0 the long fit
# alone was only +0.10 dB over the default at 0.5 bpp (kodim01-12, 6x the
# time), winning big on some images (kodim07 +1.31, kodim08 +0.89 dB) and
# losing big on others (kodim01 -0.98, kodim10 -0.78); the better of the two
# per image is +0.32 dB over the default
# (bench/results/kodak-max-v3-2026-12-04). The default's go first: under a
# time limit the first is the one that ends in time, and the long one gets
# what is left (a cut fit, `fit.cut_fit_latent_lr_scale`).
def max_candidates(bpp: float | None, timed: bool = False) -> tuple[tuple[Schedule, ...], ...]:
    """The groups of schedules `--effort max` encodes with, in order: the default effort's, then its own."""
    return default_candidates(bpp, timed), (SCHEDULES["max"],)


def _best_of_candidates(pixels: np.ndarray, opts: EncodeOptions, groups: tuple[tuple[Schedule, ...], ...],
                        start: float, limit: float | None, progress: ProgressFn | None) -> EncodeResult:
    """An encode with each group of schedules (`_encode_group`), the best file kept (`candidate_rank`).

    Under a time limit each group gets what is left of it, and a group
    starts only if the first one's time is still left.
    """
    results: list[EncodeResult] = []
    for number, group in enumerate(groups, 1):
        # The first group gets the limit as given: its architecture follows
        # it (`architecture_for`), and a limit of 30 s less the microseconds
        # spent here would fall under WAVEFRONT_MIN_TIME_LIMIT.
        begun, left = start, limit
        if results:
            begun = time.monotonic()
            left = None if limit is None else limit - (begun - start)
            if left is not None and left < results[0].seconds:
                break
        numbered = _numbered_progress(progress, number, len(groups)) if len(groups) > 1 else progress
        results += _encode_group(pixels, opts, group, begun, left, numbered)
    best = max(results, key=lambda r: candidate_rank(r.psnr, r.bpp, opts.bpp, opts.lmbda))
    return replace(best, seconds=time.monotonic() - start, iterations=sum(r.iterations for r in results))


def _encode_group(pixels: np.ndarray, opts: EncodeOptions, group: tuple[Schedule, ...], start: float,
                  limit: float | None, progress: ProgressFn | None) -> list[EncodeResult]:
    """A file per schedule of `group`, side by side on a CPU with a thread for each.

    With fewer torch threads than schedules or under a time limit below
    PAIR_MIN_TIME_LIMIT, only the first schedule's. A GPU runs
    them one after the other, and only the first under a time limit (each
    would get half of it). Side by side, every worker's encode ends within
    `limit` of `start`.
    """
    threads = torch.get_num_threads()
    on_cpu = opts.device == "cpu"
    one_fit = (len(group) == 1
               or (on_cpu and threads < len(group))
               or (limit is not None and limit < PAIR_MIN_TIME_LIMIT)
               or (not on_cpu and limit is not None))  # one after the other, each would get half the time
    if one_fit:
        return [_encode_once(pixels, opts, group[0], start, limit, progress)]
    if on_cpu:
        return encode_side_by_side(pixels, opts, group, threads // len(group), progress, start, limit)
    return [_encode_once(pixels, opts, schedule, time.monotonic(), None, progress) for schedule in group]


def _numbered_progress(progress: ProgressFn | None, number: int, count: int) -> ProgressFn | None:
    """`progress` with "candidate" and "candidates" added to its stats, so a progress bar can say which fit runs."""
    if progress is None:
        return None

    def numbered(it: int, total: int, stats: dict[str, float]) -> None:
        progress(it, total, {**stats, "candidate": number, "candidates": count})

    return numbered


def candidate_rank(psnr: float, bpp: float, target_bpp: float | None, lmbda: float | None) -> tuple[bool, float]:
    """How `--effort max` ranks its files: the higher the better (the first of equals wins).

    With a target rate, files within RATE_PROMISE first, then by PSNR moved
    to the target (PSNR_PER_LN_RATE); at a fixed lambda by the training's
    cost, MSE + lambda * bits per pixel (lower is better).
    """
    if target_bpp is None:
        assert lmbda is not None
        return True, -(10 ** (-psnr / 10) + lmbda * bpp)
    return keeps_promise(bpp, target_bpp), moved_to_target(psnr, bpp, target_bpp)


def _encode_once(pixels: np.ndarray, opts: EncodeOptions, schedule: Schedule, start: float, limit: float | None,
                 progress: ProgressFn | None) -> EncodeResult:
    """One fit and its rate landing under `schedule`, within `limit` seconds from `start` if given."""
    height, width, _ = pixels.shape
    n_pixels = height * width
    device = torch.device(opts.device)
    image = torch.tensor(pixels, dtype=torch.float32, device=device) / 255.0
    arch = architecture_for(opts.effort, limit)
    schedule = schedule_on(schedule, arch)
    if opts.iterations is not None:
        schedule = replace(schedule, iterations=opts.iterations)
    if opts.lmbda is not None:
        target = RateTarget(None, opts.lmbda)
    else:
        assert opts.bpp is not None
        target = rate_target(opts.bpp, n_pixels, arch)
    fit_deadline = start + FIT_SHARE_OF_TIME * limit if limit is not None else None
    land_deadline = start + LANDING_SHARE_OF_TIME * limit if limit is not None else None

    seed = opts.seed + schedule.seed_offset
    torch.manual_seed(seed)
    # How busy the image is (BUSY_JPEG_BPP), measured once: the fit's own rate model reads it too.
    busy = (jpeg_bpp(pixels) if opts.bpp is not None and (limit is not None or schedule.iterations <= SHORT_FIT_STEPS)
            else None)
    full_aim = busy is not None and busy >= BUSY_JPEG_BPP
    fitter = Fitter(image, new_model(height, width, schedule, arch, device), target, seed, full_aim=full_aim,
                    image_jpeg_bpp=busy)
    steps = fitter.run(schedule, progress, fit_deadline)
    written = time.monotonic()
    data = _quantize_and_write(fitter.model, image, fitter.lmbda, seed)
    psnr_of = decoded_psnr(pixels)
    if opts.bpp is not None:
        landing = Landing(refit_schedule(schedule, steps), land_deadline, time.monotonic() - written,
                          fit_cut=steps < schedule.iterations)
        data, steps = _land_rate(fitter, data, opts.bpp * n_pixels, landing, progress, steps, psnr_of)
    return EncodeResult(
        data=data,
        bpp=len(data) * 8 / n_pixels,
        psnr=psnr_of(data),
        seconds=time.monotonic() - start,
        iterations=steps,
        lmbda=fitter.lmbda,
        width=width,
        height=height,
    )


def decoded_psnr(pixels: np.ndarray) -> Callable[[bytes], float]:
    """PSNR of a file's decoded pixels against `pixels`, remembered for the last few files.

    Decoding a Kodak image takes ~0.25 s; the landing scores the files it
    keeps and the encoder reports the one it returns, usually one of them.
    """

    @functools.lru_cache(maxsize=4)
    def psnr_of(data: bytes) -> float:
        return psnr_uint8(render(read_coco(data)), pixels)

    return psnr_of


def refit_schedule(schedule: Schedule, fit_steps: int) -> Schedule:
    """A refit: a sixth of the steps the fit ran (at least 60), with a longer rounding phase."""
    return replace(schedule, iterations=max(60, fit_steps // 6), ste_fraction=REFIT_STE_FRACTION)


@dataclass(frozen=True)
class Landing:
    """What the landing may spend: the refit schedule and, under a time limit, a deadline.

    Attributes:
        refit: the schedule of one refit (`refit_schedule`).
        deadline: time.monotonic() by which the landing ends; None without a time limit.
        write_seconds: what writing one file took (quantize and entropy-code).
        fit_cut: whether the deadline cut the fit short of its schedule
            (the landing's rules are then the timed ones, GENEROUS_TIME_LIMIT).
    """

    refit: Schedule
    deadline: float | None = None
    write_seconds: float = 0.0
    fit_cut: bool = False

    @property
    def timed_rules(self) -> bool:
        """Whether the landing follows the timed rules: under a deadline that cut the fit."""
        return self.deadline is not None and self.fit_cut

    def affordable_refit_steps(self, seconds_per_step: float | None) -> int:
        """Steps of the next refit: all of them, fewer before a deadline, 0 when too few fit.

        Too few: under MIN_TIMED_REFIT_STEPS or MIN_TIMED_REFIT_SHARE of the refit.
        """
        if self.deadline is None:
            return self.refit.iterations
        if seconds_per_step is None:
            return 0  # a fit too short to measure its pace cannot plan a refit either
        left = self.deadline - time.monotonic() - FILES_AFTER_A_REFIT * self.write_seconds
        steps = min(self.refit.iterations, int(max(0.0, left) / seconds_per_step))
        fewest = max(MIN_TIMED_REFIT_STEPS, math.ceil(MIN_TIMED_REFIT_SHARE * self.refit.iterations))
        return steps if steps >= fewest else 0

    @property
    def refit_deadline(self) -> float | None:
        """When a running refit must stop: room is left for its file and a dead-zone file."""
        return None if self.deadline is None else self.deadline - 2 * self.write_seconds


def _land_rate(fitter: Fitter, data: bytes, target_bits: float, landing: Landing,
               progress: ProgressFn | None, steps: int,
               psnr_of: Callable[[bytes], float] | None = None) -> tuple[bytes, int]:
    """Bring a trained file within RATE_TOLERANCE of `target_bits`.

    First MIN_REFITS short refits with lambda moved by the size of the miss
    (however small). Then, slightly too large: widen the rounding dead zone
    until the exact whole-image rate estimate says the file fits (no
    training). Far too large (over DEAD_ZONE_MAX_OVERSHOOT) or too small:
    another refit, then the dead zone again. Once some file keeps the rate
    promise, at most REFITS_ONCE_PROMISED refits run, and the file returned
    is the best of those within the promise (PSNR moved to the target rate,
    PSNR_PER_LN_RATE). A schedule that does not refit promised files
    (`Schedule.refit_promised`, see HIGH_RATE_LANDING) ends an untimed
    landing (or one after a fit the deadline did not cut,
    `Landing.timed_rules`) at the first such file instead: no polishing
    refit, and the file cut to the rate if it is over; its refits count
    the bits a refit adds by itself and restart lower (FIRM_REFITS). Under a time limit a
    refit runs only while enough of it fits before the landing's deadline
    (`Landing`). Out of refits and still over, or under the promise, the
    dead zones start from the smallest file written that is not under the
    promise (`_Snapshot`), not from the last; an undershoot left that way
    competes with the promised files.
    `psnr_of` scores a file (`decoded_psnr`; by default against the fitter's
    image). Returns the file and the total training steps.
    """
    model = fitter.model
    short_fit = steps <= SHORT_FIT_STEPS and landing.deadline is None
    gain = SHORT_FIT_REFIT_GAIN if short_fit else 1.0
    settle = short_fit and fitter.full_aim  # a fully aimed short fit keeps a file within the promise
    # See HIGH_RATE_LANDING; landings after a fit the deadline cut keep their refits (GENEROUS_TIME_LIMIT).
    stop_at_promise = not landing.refit.refit_promised and not landing.timed_rules
    min_refits, refits_once_promised = (0, 0) if stop_at_promise else (MIN_REFITS, REFITS_ONCE_PROMISED)
    firm_refits = stop_at_promise and not short_fit  # see FIRM_REFITS: measured after long fits
    drift, refit_lr_peak = (REFIT_DRIFT, FIRM_REFIT_LR_PEAK) if firm_refits else (0.0, REFIT_LR_PEAK)
    fitter.recentre_lambda_range()  # refits never raise lambda past 3x today's (see fit.LAMBDA_SPAN_UP)
    # Timed format 1.0 landings keep the dead zone (see RANKED_CUT_DEADLINE).
    ranked_cut = model.arch.context_tile is not None or landing.deadline is None
    cut_candidates = model.arch.context_tile is not None and not landing.timed_rules  # see CUT_CANDIDATE_OVER
    trained: list[tuple[float, float, int]] = []  # (ln lambda, ln latent bits, first level) per trained file
    promised: list[tuple[float, bytes]] = []  # (PSNR at the target rate, file) of each file within the promise
    cuts: list[tuple[float, bytes]] = []  # the same for cuts of files over it (CUT_CANDIDATE_OVER)
    rescue_from: _Snapshot | None = None  # the smallest file not under the promise, with its model
    undershot: tuple[float, bytes] | None = None  # (PSNR at the target rate, file) left for rescue_from
    if psnr_of is None:
        psnr_of = decoded_psnr(fitter.image_pixels())
    for attempt in range(MAX_REFITS + 1):
        bits = len(data) * 8
        _keep_if_promised(promised, data, psnr_of, target_bits)
        if cut_candidates:
            _keep_cut_if_over(cuts, fitter, data, psnr_of, target_bits)
        if bits >= target_bits * (1 - RATE_PROMISE) and (rescue_from is None or bits < len(rescue_from.data) * 8):
            rescue_from = _Snapshot.take(fitter, data)
        refit_steps = landing.affordable_refit_steps(fitter.seconds_per_step)
        out_of_refits = (attempt == MAX_REFITS or refit_steps == 0
                         or (attempt >= refits_once_promised and bool(promised)))
        polish = attempt < min_refits and not out_of_refits and not settle
        if abs(bits / target_bits - 1) <= (RATE_PROMISE if settle else RATE_TOLERANCE) and not polish:
            break
        under_promise = bits < target_bits * (1 - RATE_PROMISE)
        if (out_of_refits and rescue_from is not None and rescue_from.data is not data
                and (bits > target_bits or under_promise)):
            # The last refit can end further over than an earlier file (see
            # MIN_TIMED_REFIT_SHARE), or under the promise after an earlier
            # file was not: the dead zones start from the smallest file not
            # under it. Brought within the promise, that file keeps the
            # user's rate, but the dead zone is blunt, so the undershoot is
            # returned instead when its PSNR moved to the target rate is
            # higher. Without that comparison (ee9c527), kodim03 at 0.5 bpp,
            # `--effort max` under 150 s: refits wrote 0.5646 bpp / 34.49 dB,
            # then 0.4747 / 33.73 (5.1 % under), and the dead zone took the
            # first to 0.5018 / 31.00 dB where the undershoot scores 33.96
            # (ad hoc, `bench.landing_trace`, 2026-12-02). kodim06 had ended
            # 26 % under after refits wrote 0.547 and then 0.364 bpp.
            if under_promise:
                undershot = (_psnr_at_target(psnr_of, data, target_bits), data)
            data = rescue_from.restore(fitter)
            bits = len(data) * 8
        if bits > target_bits and not polish and (dead_zone_may_take(bits, target_bits) or out_of_refits):
            shrunk = _shrink_to(fitter, data, target_bits, by_cost=ranked_cut)
            if shrunk is not None:
                data = shrunk
                continue
        if out_of_refits:
            data = _rescue(fitter, data, target_bits)
            break  # the time limit wins over the last percent of rate
        # Too small, too large for the dead zone alone, or not yet polished:
        # re-aim the latent rate by the observed ratio and refit. Only a real
        # undershoot aims above the target (for the dead zone to take).
        model.dead_zone, model.shrink = 0.0, None
        latent_bits = latent_section_bits(data)
        trained.append((fitter.log_lambda, math.log(max(latent_bits, 1.0)), model.first_level))
        under = bits < target_bits * (1 - RATE_TOLERANCE) and not firm_refits
        aim = target_bits * (1 + AIM_ABOVE) if under else target_bits
        ratio = max(aim - (bits - latent_bits), 1.0) / max(latent_bits, 1.0)
        fitter.lower_lambda_floor()
        # After a long fit the rate no longer drifts down: move lambda at once
        # by what the miss says and hold it (see REFIT_STE_FRACTION), leaving
        # a firm landing's refit the bits it adds by itself (FIRM_REFITS).
        # After a short fit the rate still falls, so move part of the way
        # (SHORT_FIT_REFIT_GAIN).
        fitter.move_lambda(refit_lambda_move(math.log(ratio), trained, lagging=not short_fit, drift=drift) * gain)
        far_over = short_fit and bits > target_bits * (1 + SHORT_FIT_DROP_OVERSHOOT)
        if (attempt == 0 and bits > target_bits and model.first_level == 0
                and ((fitter.lmbda > DROP_FINEST_ABOVE and not firm_refits) or far_over)
                and not _dead_zone_reaches(fitter, _wanted_latent_bpp(fitter, data, target_bits))):
            # Too large even for the dead zone, and the refit's lambda is in
            # the range where the fit itself drops the full-resolution latents:
            # they hold bits the rate term prunes only slowly (kodim08 at
            # 0.75 bpp: refits at 3x lambda still ended at 16.9 dB after the
            # dead zone). Drop them first, and lower lambda as the fit does
            # (DROP_LAMBDA_FACTOR). At low lambda they carry the detail:
            # kodim02 at 1 bpp (lambda 2.7e-4, 32 % over) lost 1.8 dB by the
            # drop. The decision and the move use the file before the drop:
            # right after it the context model, trained on the level, codes
            # its zeros at several bpp (kodim08 at 1 bpp: 4.0 bpp), which
            # used to send lambda to its ceiling and the refit to 0.55 bpp.
            # After a short fit far over the request the level goes whatever
            # lambda is (see SHORT_FIT_DROP_OVERSHOOT). A firm landing keeps
            # it: its fit kept the level past DROP_FINEST_ABOVE late on
            # purpose (fit.FIRM_DROP_UNTIL), and kodim08 at 0.5 bpp, 11 %
            # over, refit from 0.557 to 0.325 bpp without it (see
            # FIRM_LANDING_BPP).
            model.drop_finest_level()
            fitter.move_lambda(math.log(DROP_LAMBDA_FACTOR))
        refit = replace(landing.refit, iterations=refit_steps)
        steps += fitter.run(refit, progress, landing.refit_deadline, phase="refit", lr_peak=refit_lr_peak)
        data = _quantize_and_write(model, fitter.image, fitter.lmbda, fitter.seed)
    _keep_if_promised(promised, data, psnr_of, target_bits)  # the last refit's or dead zone's file
    candidates = promised + cuts + ([undershot] if undershot is not None else [])
    if candidates:
        data = max(candidates, key=lambda kept: kept[0])[1]
    return data, steps


@dataclass(frozen=True)
class _Snapshot:
    """A file the landing wrote and the model state that wrote it (a few MB of latents)."""

    data: bytes
    state: dict[str, torch.Tensor]
    first_level: int
    dead_zone: float
    shrink: list[torch.Tensor] | None
    log_lambda: float

    @classmethod
    def take(cls, fitter: Fitter, data: bytes) -> _Snapshot:
        model = fitter.model
        state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        return cls(data, state, model.first_level, model.dead_zone, model.shrink, fitter.log_lambda)

    def restore(self, fitter: Fitter) -> bytes:
        """Put the model back as it was when it wrote `data`; returns `data`."""
        model = fitter.model
        model.load_state_dict(self.state)
        model.first_level, model.dead_zone, fitter.log_lambda = self.first_level, self.dead_zone, self.log_lambda
        model.shrink = self.shrink  # replaced, never changed in place
        return self.data


def _rescue(fitter: Fitter, data: bytes, target_bits: float) -> bytes:
    """Shrink a file still over the rate promise with dead zones up to RESCUE_DEAD_ZONE.

    Each try re-calibrates the rate estimate on the file the last one wrote:
    at dead zones past 1 the estimate and the coded size part ways (kodim11
    at 0.5 bpp, `--effort max`: one try aimed at 0.5 bpp and wrote 0.56,
    ad hoc, 2026-11-30).
    """
    for _ in range(RESCUE_TRIES):
        if len(data) * 8 <= target_bits * (1 + RATE_PROMISE):
            break
        shrunk = _shrink_to(fitter, data, target_bits, RESCUE_DEAD_ZONE)
        if shrunk is None or len(shrunk) >= len(data):
            break
        data = shrunk
    return data


def _keep_if_promised(promised: list[tuple[float, bytes]], data: bytes, psnr_of: Callable[[bytes], float],
                      target_bits: float) -> None:
    """Remember `data` with its PSNR at the target rate if it keeps the rate promise.

    Files arrive in order, so a file already kept can only be the last one.
    """
    if not keeps_promise(len(data) * 8, target_bits) or (promised and promised[-1][1] is data):
        return
    promised.append((_psnr_at_target(psnr_of, data, target_bits), data))


def _keep_cut_if_over(cuts: list[tuple[float, bytes]], fitter: Fitter, data: bytes,
                      psnr_of: Callable[[bytes], float], target_bits: float) -> None:
    """Remember a ranked cut of `data` to the target rate if `data` is over the promise, by at most CUT_CANDIDATE_OVER.

    The cut is a candidate only: the model is left as it was, and the
    landing goes on with the uncut file (see CUT_CANDIDATE_OVER).
    """
    model = fitter.model
    bits = len(data) * 8
    if not target_bits * (1 + RATE_PROMISE) < bits <= target_bits * (1 + CUT_CANDIDATE_OVER):
        return
    if model.dead_zone != 0.0 or model.shrink is not None:
        return  # already a cut file
    if _shrink_by_cost(fitter, _wanted_latent_bpp(fitter, data, target_bits)):
        _keep_if_promised(cuts, _quantize_and_write(model, fitter.image, fitter.lmbda, fitter.seed), psnr_of,
                          target_bits)
    model.shrink = None


def _psnr_at_target(psnr_of: Callable[[bytes], float], data: bytes, target_bits: float) -> float:
    """A file's PSNR moved to the target rate (`moved_to_target`)."""
    return moved_to_target(psnr_of(data), len(data) * 8, target_bits)


def moved_to_target(psnr: float, size: float, target: float) -> float:
    """PSNR moved along PSNR_PER_LN_RATE from a file's size to the target (both bits, or both bpp).

    So files of different sizes compare at one rate.
    """
    return psnr + PSNR_PER_LN_RATE * math.log(target / size)


def keeps_promise(size: float, target: float) -> bool:
    """Whether a file's size is within RATE_PROMISE of the target (both bits, or both bpp)."""
    return abs(size / target - 1) <= RATE_PROMISE


def refit_lambda_move(log_ratio: float, trained: list[tuple[float, float, int]], lagging: bool = False,
                      drift: float = 0.0) -> float:
    """The ln lambda move for a refit to change the latent bits by `log_ratio` (ln), `drift` of it its own.

    A refit adds `drift` (ln) at an unchanged lambda (see FIRM_REFITS); the
    rest is lambda's move at `refit_elasticity`.
    """
    return -(log_ratio - drift) / refit_elasticity(trained, lagging, drift)


def refit_elasticity(trained: list[tuple[float, float, int]], lagging: bool = False, drift: float = 0.0) -> float:
    """-d ln(rate) / d ln(lambda) for the next refit's move.

    The secant through the last two trained files where they share a
    structure (same first level) and lambda moved, net of the `drift` each
    refit adds by itself (see FIRM_REFITS); REFIT_ELASTICITY before
    that. Busy images answer lambda far less than 0.6 in a refit (kodim08 at
    0.75 bpp: ~0.3), so a fixed elasticity crept towards the target over all
    the refits and missed by 16 %. With `lagging` (refits after a long fit)
    a secant under REFIT_ELASTICITY is shrunk towards it (LAGGING_SECANT_WEIGHT).
    """
    if len(trained) >= 2:
        (lam0, rate0, level0), (lam1, rate1, level1) = trained[-2:]
        if level0 == level1 and abs(lam1 - lam0) > MIN_SECANT_STEP:
            secant = -(rate1 - rate0 - drift) / (lam1 - lam0)
            if lagging and secant < REFIT_ELASTICITY:
                weight = LAGGING_SECANT_WEIGHT
                secant = max(secant, LAGGING_SECANT_FLOOR) ** weight * REFIT_ELASTICITY ** (1 - weight)
            return min(MAX_ELASTICITY, max(MIN_ELASTICITY, secant))
    return REFIT_ELASTICITY


def dead_zone_may_take(bits: float, target_bits: float) -> bool:
    """Whether an overshoot is small enough for the dead zone (see DEAD_ZONE_MAX_OVERSHOOT)."""
    return bits <= target_bits * (1 + DEAD_ZONE_MAX_OVERSHOOT)


def _wanted_latent_bpp(fitter: Fitter, data: bytes, target_bits: float) -> float:
    """The `fitter.latent_bpp` estimate at which the file would be `target_bits`.

    The estimate tracks the coded LATS section to ~1 %; it is calibrated on
    the current file (header and network bits stay as they are).
    """
    n_pixels = fitter.model.height * fitter.model.width
    latent_bits = latent_section_bits(data)
    calibration = latent_bits / max(fitter.latent_bpp() * n_pixels, 1.0)
    return (target_bits - (len(data) * 8 - latent_bits)) / calibration / n_pixels


def _dead_zone_reaches(fitter: Fitter, wanted: float, widest: float = MAX_DEAD_ZONE) -> bool:
    """Whether the `widest` dead zone brings the latent estimate down to `wanted`."""
    model = fitter.model
    before, model.dead_zone = model.dead_zone, widest
    reaches = fitter.latent_bpp() <= wanted
    model.dead_zone = before
    return reaches


def _shrink_to(fitter: Fitter, data: bytes, target_bits: float, widest: float = MAX_DEAD_ZONE,
               by_cost: bool = True) -> bytes | None:
    """Re-quantize so that the file is about `target_bits`: latents moved towards zero, cheapest first.

    Ordinary cuts (`widest` up to MAX_DEAD_ZONE) move the latents that cost
    least distortion per bit saved one step towards zero (`_shrink_by_cost`;
    see SHRINK_BY_COST above DEAD_ZONE_BISECTIONS; in format 1.0 files never
    a checkerboard anchor). Cuts that moving all of those cannot make, the
    rescue's wider cuts and every cut without `by_cost` (the landing's timed
    format 1.0 cuts, RANKED_CUT_DEADLINE) bisect the rounding dead zone
    instead, on the calibrated estimate (`_wanted_latent_bpp`).
    None when even the widest dead zone leaves the file too large (the
    network bits dominate, or the fit is far off): that needs a refit, and
    a dead zone that wide would wreck the picture for nothing.
    """
    model = fitter.model
    wanted = _wanted_latent_bpp(fitter, data, target_bits)
    if by_cost and widest <= MAX_DEAD_ZONE and model.dead_zone == 0.0:
        if _shrink_by_cost(fitter, wanted):
            return _quantize_and_write(model, fitter.image, fitter.lmbda, fitter.seed)
    if not _dead_zone_reaches(fitter, wanted, widest):
        return None
    lo, hi = model.dead_zone, widest
    for _ in range(DEAD_ZONE_BISECTIONS):
        model.dead_zone = (lo + hi) / 2
        if fitter.latent_bpp() > wanted:
            lo = model.dead_zone
        else:
            hi = model.dead_zone
    model.dead_zone = hi
    return _quantize_and_write(model, fitter.image, fitter.lmbda, fitter.seed)


def _shrink_by_cost(fitter: Fitter, wanted: float) -> bool:
    """Move the fewest cheapest latents (`shrink.shrink_costs`) that bring the latent estimate to `wanted`.

    Bisected on how many move. False, the model's shrink cleared, when even
    every candidate moving is not enough.
    """
    model = fitter.model
    costs = shrink_costs(model, fitter.image, fitter.bands())
    lo, hi = 0, n_candidates(costs)
    model.shrink = shrink_masks(costs, hi)
    if fitter.latent_bpp() > wanted:
        model.shrink = None
        return False
    while hi - lo > max(1, hi // 2**SHRINK_BISECTION_RESOLUTION):
        middle = (lo + hi) // 2
        model.shrink = shrink_masks(costs, middle)
        if fitter.latent_bpp() > wanted:
            lo = middle
        else:
            hi = middle
    model.shrink = shrink_masks(costs, hi)
    return True


def _quantize_and_write(model: CocoNet, image: torch.Tensor, lmbda: float, seed: int) -> bytes:
    """Quantize on the CPU (cheap, and integer conversion needs host memory)."""
    cpu_model = copy.deepcopy(model).to("cpu")
    qm = quantize_model(cpu_model, image.cpu(), lmbda, seed)
    return write_coco(qm.header, qm.synthesis, qm.arm, qm.latents)


def latent_section_bits(data: bytes) -> float:
    """Bits of a file's LATS section (the rest is header and network)."""
    _, _, payloads, _ = read_sections(data)
    return len(payloads[b"LATS"]) * 8.0
