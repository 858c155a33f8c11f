"""Fitting a CocoNet to one image under a rate target.

Loss: MSE + lambda * (estimated latent bits / pixels), images in [0, 1].
Schedule (after C3): Adam with a cosine-decayed learning rate; uniform noise
on the latents for most of training, then straight-through rounding so the
rate estimate and the reconstruction match what the decoder will see.

Rate control: instead of asking the user for lambda we predict it. The fit
starts at a generic lambda for the requested rate; at PROBE_AT of the schedule
(at most step 600, see `probe_step`) the whole-image latent rate is measured
and lambda is set from it by an empirical rate model (`predicted_log_lambda`).
From STEER_AT[0] on the rate is measured at a few checkpoints and lambda
nudged by the miss each predicts for the end of the fit (`steer_log_step`);
in between lambda is held: a steady lambda is what rate-distortion training
needs, and large moves late in the fit cost quality (see RATE_MODEL). The
encoder then lands the file on the exact size with a rounding dead zone, or
short refits at a lambda moved by the size of the miss.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .complexity import jpeg_bpp
from .model import CocoNet, Window
from .optim import Adam

ProgressFn = Callable[[int, int, dict[str, float]], None]
# Refits (`encoder._land_rate`) move lambda, never above 3x where the landing
# began (each refit may lower it another 10x), so refits cannot run lambda up
# until the latents collapse (kodim08 at 0.5 bpp reached lambda 0.6 and
# 16.6 dB, bench/results/kodak-2026-11-24d).
LAMBDA_SPAN_DOWN = math.log(10.0)
LAMBDA_SPAN_UP = math.log(3.0)
# Adam's moment decays in long fits (PyTorch's defaults; for short ones see
# SHORT_FIT_BETA2). At a fixed lambda 0.99 for the
# second moment fitted better (ad-hoc 4200-step fits, 2026-11-29: kodim03
# +0.47 dB at 4 % less rate, kodim05 +0.27 dB, kodim01 +0.14 dB), and so did
# no straight-through phase (see `Schedule.ste_fraction`); together with a
# 24-wide synthesis and the 1 % learning-rate floor (since adopted on its own,
# see LR_FLOOR) they were measured end to end, and lost
# more in the rate landing than they gained: with them the fit answered
# lambda less (steered, kodim01 at 0.75 bpp ended 46 % over its target where
# this training ended 15 % over) and refits after the fit destroyed quality
# (kodim01 at 0.75: 27.20 -> 25.29 -> 24.34 dB over two refits; kodim02 at 1 bpp
# without the straight-through phase lost 3.6 dB to a 6 % dead zone). Ad-hoc
# encodes, 2026-11-29; bench/results/kodak-2026-11-29 for the unsteered sweep.
ADAM_BETAS = (0.9, 0.999)
# Short fits want a faster second-moment decay: at fixed lambdas, 650-step
# fits of `--effort fast` with beta2 0.95 gained +0.59 dB at the same rate
# over 8 files of kodim01/02/03/05 (0.9: +0.58, 0.99: +0.28, 0.8: +0.06;
# bench/results/fixed-lambda-fast-beta2-2026-12-01). Fits of at most
# SHORT_FIT_STEPS use SHORT_FIT_BETA2, fits of at least LONG_FIT_STEPS
# ADAM_BETAS's, and fits in between 1 - beta2 interpolated in log-log
# (`adam_beta2`), like the networks' learning rates (see LR_NETWORK). The
# default effort's 4200-step fits at 0.95 lost 0.23 dB at the requested
# rate over kodim01-06 at 0.5 bpp (3 of 6 better) and took longer
# (bench/results/kodak-default-beta2-2026-12-01, partial).
SHORT_FIT_BETA2 = 0.95
# And a faster first-moment decay, planned the same way (`adam_beta1`): at
# fixed lambdas, 743-step fits of `--effort fast` with beta1 0.8 gained
# +0.21 dB at the same rate over 8 files of kodim01/02/03/05, all 8 better
# (0.7: +0.15, 0.6: +0.11; bench/results/fixed-lambda-fast-2026-12-02);
# the default effort's 3000-step fits at 0.8 lost 0.10 dB over
# kodim01/03/05/12 (bench/results/fixed-lambda-default-2026-12-02), which is
# why long fits keep ADAM_BETAS's.
SHORT_FIT_BETA1 = 0.8
# The cosine schedule ends at this fraction of the peak learning rate. At
# 0.1 the fit ended unconverged: at a fixed lambda of 3e-4, kodim12 after
# 4200 steps was at 1.543 bpp / 35.30 dB, and 700 more steps at a tenth of
# that learning rate took it to 1.397 bpp / 36.44 dB; with this floor the same
# 4200 steps reached 1.421 bpp / 36.23 dB (ad hoc, 2026-11-29). End to end
# (bench/results/kodak-2026-11-29e against -29d, same 36 requests, each file
# against JPEG 4:2:0 at its own rate): +0.12 / +0.21 / +0.02 dB at 0.25 /
# 0.5 / 1 bpp. Refits start at REFIT_LR_PEAK again and end at this fraction
# of it.
LR_FLOOR = 0.01
# The networks' peak learning rates depend on how many steps the fit has
# (`network_learning_rates`): fits of at most SHORT_FIT_STEPS train the
# synthesis at SHORT_FIT_LR_SYNTHESIS and the context model at
# SHORT_FIT_LR_CONTEXT, fits of at least LONG_FIT_STEPS both at LR_NETWORK, and
# fits in between at rates interpolated in log-log. Fast networks converge
# faster but land no better on long fits: ad-hoc fixed-lambda fits gained
# +0.2..+0.5 dB at the same rate after 1200 steps (kodim02 coded at 0.28 bpp
# where 0.005 left it at 0.76) and nothing after 4200 (+0.42 / -0.10 / -0.25
# dB on kodim03/08/12). Under `--time-limit` the planned length decides, so a
# cut-short default fit trains like `--effort fast`; refits keep the fit's
# rates. Kodak kodim01-12 at 0.5 bpp (bench/results/quality-vs-time-2026-11-30c,
# fast rates at every length, steering still scaled down in short fits):
# +1.2 dB at 10 and 30 s, +0.3 at 60 s, nothing at 120 s. `--effort fast`
# (300 steps) with them, kodim01-12 at 0.25-1 bpp: BD-rate vs JPEG 4:2:0
# +183.6 % -> +121.6 %, 46 of 48 files within 5 % of the request (was 40;
# bench/results/kodak-fast-2026-11-30 against kodak-fast-2026-11-29b).
LR_NETWORK = 0.005
SHORT_FIT_STEPS, LONG_FIT_STEPS = 1200, 4200
SHORT_FIT_LR_SYNTHESIS = 0.01
SHORT_FIT_LR_CONTEXT = 0.04
# A fit that a deadline cuts short trains its latents faster when its
# schedule's are slow (`cut_fit_latent_lr_scale`): `--effort max`'s latents
# (0.03, planned for 16800 steps) had not settled in a fit cut to ~7000
# steps, its file ended over the request, and the refits kept shedding
# bits whatever lambda did: kodim06 at 0.5 bpp under 150 s wrote 0.584,
# then 0.418 (lambda raised 1.3x), then 0.275 bpp (lowered again) at
# 25.4 dB each, and that 45 % undershoot was the best file it had (ad hoc,
# `bench.landing_trace`, 2026-12-02). A fit run for at most
# CUT_FIT_FAST_LATENTS_SHARE of its schedule trains them at
# CUT_FIT_LR_LATENT_MOST (the default effort's rate); between that and the
# whole schedule the rate rises log-log with the cut. Six Kodak images at
# 0.5 bpp under 150 s (max fits cut to ~half): at 0.1 +0.28 dB at the
# request over the same encoder raising them only to ~0.055 (kodim06 +1.3
# dB, the others -0.1..+0.3), which itself kept the rate promise where the
# slow latents had not (bench/results/quality-vs-time-max150-cutlr-2026-12-02,
# -02b); under 300 s, max fits cut to ~70 % on another machine, 0.1 had
# saved kodim06 (28.5 dB) and gained on kodim01 and kodim11
# (bench/results/quality-vs-time-2026-12-02c). Faster latents stay as they
# are. Each latent group goes by its own rate: the default effort's slowed
# full-resolution level (encoder.MID_RATE_LR_LATENT_FINEST) speeds up in a
# cut fit while its coarser levels, at 0.1, do not.
CUT_FIT_FAST_LATENTS_SHARE = 0.7
CUT_FIT_LR_LATENT_MOST = 0.1
# Under a deadline the step count is planned from the measured speed at step
# REPLAN_FIRST, and planned again every REPLAN_EVERY steps: the whole-image
# rate measurements of the probe, the steering and the display, and a slower
# machine, all show in the measured pace, which a plan made once from the
# first steps missed. The first step is left out of the pace: it allocates
# the model's buffers and measures the whole image (~1 s on a Kodak image,
# ~60 steps' worth). Every 100 steps was too seldom for short fits: a 10 s
# encode's fit (~350 steps) ended up to 0.5 s past its deadline (ad hoc,
# 2026-11-30; in bench/results/quality-vs-time-2026-11-30d one 10 s encode
# took 10.22 s); see bench/results/quality-vs-time-2026-11-30f for every 25.
REPLAN_FIRST = 10
REPLAN_EVERY = 25
DISPLAY_EVERY = 100  # steps between whole-image rate measurements (only the progress display reads them)
MEASURE_ROWS = 128  # image rows per band of a rate measurement
# The rate model. At a fixed lambda the rate keeps falling through the fit
# (the context model learns, the rate term prunes latents): the rate at 1/6 of
# the schedule is 1.2x (busy images) to 3x (smooth ones) the final one, so it
# cannot simply be compared with the target. Across images, though, the rate
# and the distortion at that point predict the lambda that lands:
#     ln lambda = a + b ln(rate at 1/6) + c ln(target latent bpp) + d ln(MSE at 1/6).
# The distortion term is what tells a busy image from a smooth one at the same
# early rate (kodim01 and kodim03 at 0.25 bpp probe at 0.91 and 0.73 bpp but
# need lambdas 10x apart; their MSEs differ 2x): at the optimum lambda is the
# slope -dD/dR, which grows with D. Coefficients from
# `python -m bench.calibrate_rate` (bench/results/rate-model-2026-11-24b:
# kodim01/03/05/08/12 at 0.25..1.5 bpp, 3600-step fits); the residual is
# ~0.43 in ln lambda, ~30 % in rate, which the steering and the landing
# absorb (without the MSE term: 0.46). The previous model (rate only, fitted
# at 0.25/0.5 bpp on 2400-step fits) aimed 2..7x too high at 1 bpp. Holding
# the predicted lambda gained 1.6 dB on kodim03 at 0.5 bpp over steering it
# from the start (a controller comparing the rate now with the target had
# driven lambda up 2x, then down 16x as the rate fell late; see STEER_AT for
# what steers now).
PROBE_AT = 1 / 6
# The model was fitted on fits of this length, probed at step 600. A longer
# fit is probed at that same step, where the model knows what the rate means
# (`probe_step`). A shorter fit is probed earlier in its training, when the
# rate says less: its correction is scaled down by the ratio of the lengths
# (`--effort fast`, 743 steps, keeps 0.21 of it) and the refits do the rest.
RATE_MODEL_STEPS = 3600
RATE_MODEL = (-2.63, 2.57, -2.15, 0.78)  # a, b, c, d above
MAX_LOG_CORRECTION = math.log(8.0)  # outside the calibration, move at most this far
# OWN_RATE_MODEL_FAST. `--effort fast`'s fits (743 steps on format 3.0, soft
# rounding) aim lambda with a model fitted on their own fits
# (`Schedule.own_rate_model`), which reads how busy the image is from its
# plain JPEG (`complexity.jpeg_bpp`) as well as the rate at the probe:
#     ln lambda = a + b ln(rate at the probe) + c ln(target latent bpp) + e ln(JPEG bpp),
# and takes its whole correction. Fitted on kodim01-12 at 0.25 / 0.5 / 1 bpp,
# 36 fits aimed by RATE_MODEL scaled down as above (`python -m
# bench.calibrate_rate --effort fast`; its report rounds the same fit to
# (-6.874, 1.325, -1.835, 2.298)): residual 0.21 in ln lambda, 0.24 with
# each image left out of its own prediction, where RATE_MODEL's form
# refitted on the same fits left 0.58 and the JPEG size alone 0.33. Those
# fits had ended 30 % under the request on average (sd 39 % in rate); aimed
# by this model, +1 % (sd 13 %). End to end it gained little at 0.5 bpp
# (+0.02 dB), but at 0.75 and 1 bpp the fits aimed by RATE_MODEL ended so
# far under that 7 of 24 files landed more than 5 % under, and none now
# (bench/results/fast-soft-v3-2026-12-06, own-rate-model/ and the sweeps).
OWN_RATE_MODEL_FAST = (-6.875, 1.325, -1.835, 2.297)  # a, b, c, e above
# Steering. The probe's model misses by ~30 % in rate (sd), and a trained
# fit that misses by that much lands badly: refits after the fit move the
# rate by ~0.2..0.6 per unit of ln lambda, and each costs quality. So
# from STEER_AT[0] of the fit on, while the latents can still follow, the
# whole-image rate is measured at each of STEER_AT and, from the second
# checkpoint on, lambda is nudged by the miss it predicts for the end of the
# fit (`predicted_final_log_rate`): the rate now, plus the trend since the
# last checkpoint carried on with each later interval of STEER_INTERVAL
# bringing STEER_TREND_DECAY times the change of the one before. The first
# checkpoint only measures: without a trend the decay still to come is a
# guess, and one correction at 40 % with a fixed guess (-0.37) was not
# enough: a raised lambda cut the rate 1.5..3x as much as a lowered one
# raised it, and the decay still to come ranged from -0.2 to -0.5 in ln rate
# (bench/results/rate-model-2026-11-29c: 5 of 14 fits missed by over 25 %).
# The constants below were tuned by hand on ad-hoc fits with the training of
# that calibration (24-wide synthesis, beta2 0.99, no straight-through phase;
# see ADAM_BETAS for why it is not used):
# with the fixed decay at the first checkpoint the collapsing rates of busy
# images at high lambda were pushed down further (kodim01 and kodim05 at 0.5
# bpp: -17 %, where the unsteered fits of rate-model-2026-11-29b ended at
# +18 % and +11 %; ad hoc). Their rate falls at a nearly steady pace through
# the middle of the fit (kodim01: -0.13..-0.29 in ln rate per interval from
# 30 % to 70 %), hence a slowly fading trend: with 0.6 instead of 0.9 they
# still ended 18 % low, with 0.9 at +4 % and -1 % (ad hoc, 4 fits at 0.5
# bpp). Smooth images at low lambda barely answer lambda after ~30 % (kodim03
# and kodim12 at 0.5 bpp ended ~30 % over, steered or not): their lambda has
# to come right from the probe; the landing does what it can for them.
# The gain is below one because the rate answers a move over hundreds of
# steps: the next checkpoint sees part of it and corrects what is left.
STEER_AT = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STEER_INTERVAL = 0.1
STEER_TREND_DECAY = 0.9
STEER_GAIN = 0.6  # fraction of the predicted ln miss moved in ln lambda
MAX_STEER_STEP = math.log(2.0)
# A short fit steers at full strength under a deadline (`--time-limit`), and
# at length / RATE_MODEL_STEPS of it otherwise, like its probe. Under a
# deadline the fit is the landing's last good chance (little time is left to
# refit), and with the scaled steering lambda stayed near `initial_lambda`
# wherever that put the rate: with the short-fit learning rates (see LR_NETWORK) smooth
# images ended far under the request (kodim02 at 0.5 bpp under a 10 s limit:
# 0.25 bpp). Kodak kodim01-12 at 0.5 bpp, full strength
# (bench/results/quality-vs-time-2026-11-30d against -30c): 11 / 12 of 12
# files within 5 % under 10 / 30 s (were 6 / 9), 25.66 / 28.19 dB. Untimed,
# `--effort fast` (then 300 steps) had three 60-step refits after its fit, and there
# full strength overshot, mostly downwards: 35 of 48 files within 5 % at
# 0.25-1 bpp instead of 46, kodim06 at 0.75 bpp at 0.441
# (bench/results/kodak-fast-2026-11-30b against kodak-fast-2026-11-30): the
# rate answers a move a large part of a short fit later, so full-strength
# moves at each checkpoint pile up. A full-strength probe under a deadline
# missed more too (ad hoc: 7 of 12 within 5 % under 10 s).
# TIMED STEERING. Under a deadline the fit steers with its own lambda moves
# taken into account (`compensated_final_log_rate`): the trend between two
# checkpoints holds the rate's answer to the move made at the first of them,
# and the plain extrapolation read that answer as the image's own drift and
# carried it on to the end of the fit, so the next move undid the last one.
# kodim03 at 1 bpp under 30 s: lambda lowered 1.6x at 40 %, the rate rose
# 0.80 -> 0.91 by 50 %, the steering raised lambda again, and the fit ended
# 25 % under; kodim05 at 0.25 bpp under 60 s the mirror image, 34 % over
# (bench/results/quality-vs-time-1bpp-2026-12-04, -025bpp-2026-12-04,
# landing traces). A move of lambda by m (ln) is taken to show as
# -MOVE_SEEN_BY_NEXT_CHECKPOINT * m in ln rate by the next checkpoint and
# -MOVE_RESPONSE * m in all; the rest still to come counts in the
# prediction, and lambda moves so that the whole answer cancels
# TIMED_STEER_GAIN of the predicted miss. kodim01-12, default effort,
# alternated with the plain steering on one machine (AMD EPYC family 25):
# at 1 bpp under 30 s +0.20 dB at the request, 12 of 12 files within 5 %
# (were 8); 0.5 bpp under 30 s +0.08 dB (12 and 12); 0.25 bpp under 60 s
# +0.08 dB (12, were 11), under 30 s -0.01 dB (12 and 12); 1 bpp under
# 60 s -0.10 dB (12 and 12) (bench/results/timed-steering-2026-12-05). Untimed fits keep the plain
# steering (not measured with this one).
# Fits shorter than TIMED_STEERING_MIN_STEPS (a 10 s encode's) predict the
# same way but move only STEER_GAIN of the predicted ln miss: their
# checkpoints are a few dozen steps apart, too close for the rate to show
# the answer assumed above, and there the full moves cost quality
# (kodim01-12 under 10 s: -0.61 dB at 0.5 bpp, 2 of 12 better, -0.02 dB at
# 1 bpp; with STEER_GAIN +0.11 and +0.04 dB, 12 and 10 of 12 files within
# 5 %, were 11 and 8, and at 0.25 bpp -0.32 dB, 12 and 12; 10 s encodes
# differ by up to 2 dB run to run; the same folder). Not tuned between those fits
# (~450-650 steps there) and the 30 s ones (~900-1300).
MOVE_SEEN_BY_NEXT_CHECKPOINT = 0.3
MOVE_RESPONSE = 0.6
TIMED_STEER_GAIN = 1.0
TIMED_STEERING_MIN_STEPS = 700
# Above this lambda the fit goes on without the full-resolution latents
# (`CocoNet.drop_finest_level`): ad-hoc runs gained up to 1.8 dB at lambda
# 2.5e-2 and lost 0.2..1.5 dB at lambda <= 2.8e-3, so only lambdas well above.
DROP_FINEST_ABOVE = 1e-2
# Without that level the rate falls faster and further than the model (fitted
# with every level) expects: kodim05 and kodim08 at 0.5 bpp ended at 0.32 and
# 0.37 bpp and their refits lowered lambda ~4x. Halve it when dropping.
DROP_LAMBDA_FACTOR = 0.5
# FIRM_DROP_UNTIL. An untimed fit (or one no deadline has cut short) under
# compensated steering (`Schedule.compensated_steering`, the firm
# landing's) drops the level at the probe or in the first half of the fit
# only: the steering that takes lambda past DROP_FINEST_ABOVE later is
# correcting a miss the remaining levels cannot make up for without the
# level. kodim08 at 0.5 bpp: lambda crossed it at 80 % with the rate 1.2x
# the request, the fit went on without the level and ended at 0.32 bpp;
# the landing's file lost 1.14 dB
# (bench/results/landing-below-1bpp-2026-12-06). The drops that paid came
# early and far over (2.4x the rate at 40 %, above).
FIRM_DROP_UNTIL = 0.5


# Soft rounding of the noisy latents (C3's proxy, `CocoNet.noisy_latents`;
# `Schedule.soft_rounding`): the temperatures the default effort's fits cool
# through (encoder.SCHEDULES; plain noise elsewhere). At fixed lambdas,
# cooling from 0.5 to 0.2 gained +0.45 dB at the same rate on kodim01 and
# -0.1 dB on kodim03 (0.3 -> 0.1: +0.16 dB on kodim01; ad hoc, and
# bench/results/fixed-lambda-2026-11-30), but end to end on format 1.0, with
# the rate landing, it bought nothing: -0.01 dB on average at the requested
# rate over 11 encodes of kodim01-04 at 0.25-1 bpp, from -0.46 to +0.84 dB
# (bench/results/kodak-soft-2026-11-30 against kodak-2threads-2026-11-30).
# On format 3.0 with 64x64 tiles it pays: kodim01-12 at 0.25-1 bpp, BD-rate
# vs JPEG 4:2:0 -29.2 % -> -31.6 %, +0.15 dB at the request (31 of 48
# better; kodim03, the smoothest, loses 0.1-0.5 dB at every rate), for ~8 %
# more per training step (bench/results/kodak-default-soft-2026-12-05).
# Not measured at the other efforts, which keep plain noise.
SOFT_ROUNDING = (0.5, 0.2)
# Gradient clipping and a learning-rate warm-up (`Schedule.grad_clip`,
# `Schedule.warmup`, issue 4's list) are off: at fixed lambdas on `--effort
# fast`, clipping each group at 3x / 8x its running mean norm moved files
# -0.02 / -0.09 dB at the same rate, a 5 % warm-up +0.03 dB, over 8 files
# whose starts alone move them ~0.2 dB
# (bench/results/fixed-lambda-fast-clip-2026-12-02). The running mean that
# clipping compares with decays at GRAD_NORM_DECAY a step.
GRAD_NORM_DECAY = 0.95


@dataclass(frozen=True)
class Schedule:
    """Training hyper-parameters of one effort level.

    Attributes:
        iterations: optimizer steps.
        crop: side of the square training window in pixels.
        lr_latent, lr_synthesis, lr_context: peak Adam learning rates of
            the latents, the synthesis MLP and the context model; None
            (the networks' default): by the fit's length
            (`network_learning_rates`).
        lr_latent_finest: peak learning rate of the full-resolution latent
            level alone; None: lr_latent's.
        ste_fraction: final fraction of steps with straight-through rounding
            (distortion on rounded latents, rate on noisy ones). At a fixed
            lambda the phase makes files larger and no better (ad-hoc
            4200-step fits, 2026-11-29: kodim01 at 2e-3 1.009 -> 0.922 bpp,
            28.55 -> 28.75 dB without it), but it is what keeps the rounding
            dead zone of the landing cheap (see ADAM_BETAS).
        soft_rounding: (first, last) temperature of the soft rounding in the
            noise phase (`CocoNet.noisy_latents`), or None for plain
            additive noise (see SOFT_ROUNDING).
        pretrained: the synthesis and context model start from the shipped
            pretrained weights (`inrcodec.train.pretrained`, loaded by
            `encoder.new_model`) instead of random ones; they then train at
            LR_NETWORK whatever the fit's length (see LR_NETWORK).
        adam_betas: Adam's moment decays; None: by the fit's length
            (`adam_beta1`, `adam_beta2`; see SHORT_FIT_BETA1, SHORT_FIT_BETA2).
        lr_floor: where the cosine schedule ends, a fraction of the peak
            learning rate (see LR_FLOOR).
        warmup: leading fraction of a fit's steps over which the learning
            rate rises linearly from 0 to the cosine schedule's (0: none).
        grad_clip: largest norm of each parameter group's gradient, as a
            multiple of that group's running mean norm (`Fitter.clip`); the
            gradient is scaled down to it when larger (None: unclipped).
        compensated_steering: an untimed fit steers lambda as a timed one
            does, net of its own last move and at the timed gain (see TIMED
            STEERING); False: the plain steering of STEER_AT.
        own_rate_model: (a, b, c, e) of a rate model fitted on this schedule's
            own fits, with the image's JPEG size (see OWN_RATE_MODEL_FAST):
            the probe takes its whole correction. None: RATE_MODEL, scaled
            down for fits shorter than RATE_MODEL_STEPS.
        refit_promised: whether the landing refits a file that already keeps
            the rate promise (`encoder.MIN_REFITS`,
            `encoder.REFITS_ONCE_PROMISED`); False: an untimed landing stops
            at the first such file, cut to the rate if it is over.
        seed_offset: added to the encode's seed for this fit (its crops,
            noise, starting networks and quantization subsets): two fits of
            one schedule that differ only here are two draws of the same
            training (`encoder.default_candidates`).
    """

    iterations: int
    crop: int = 256
    lr_latent: float = 0.1
    lr_synthesis: float | None = None
    lr_context: float | None = None
    lr_latent_finest: float | None = None
    ste_fraction: float = 0.15
    soft_rounding: tuple[float, float] | None = None
    pretrained: bool = False
    adam_betas: tuple[float, float] | None = None
    lr_floor: float = LR_FLOOR
    warmup: float = 0.0
    grad_clip: float | None = None
    compensated_steering: bool = False
    own_rate_model: tuple[float, float, float, float] | None = None
    refit_promised: bool = True
    seed_offset: int = 0

    def temperature(self, fraction_done: float, phase: str = "fit") -> float | None:
        """Soft-rounding temperature at a point of the noise phase (None: plain noise).

        A fit anneals geometrically from the first temperature to the second
        over its noise phase; a refit, which continues a trained fit, holds
        the second.
        """
        if self.soft_rounding is None:
            return None
        first, last = self.soft_rounding
        if phase != "fit":
            return last
        progress = min(1.0, fraction_done / max(1e-9, 1 - self.ste_fraction))
        return first * (last / first) ** progress

    def planned_adam_betas(self, steps: int) -> tuple[float, float]:
        """Adam's decays for a fit of `steps` steps: the schedule's own, else by length (`adam_beta1`, `adam_beta2`)."""
        return self.adam_betas or (adam_beta1(steps), adam_beta2(steps))


@dataclass
class RateTarget:
    """What the probe aims lambda at: latent bits per pixel (None: fixed lambda)."""

    latent_bpp: float | None
    lmbda: float


@functools.cache
def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS.

    A training step allocates a few dozen 1..6 MB tensors and frees them all.
    By default glibc returns such blocks to the OS and the next step takes
    them back page by page: the page faults cost ~10 % of the encode
    (whole-process A/B on a 400-step fit of kodim03, 2026-11-25: system time
    1.5 -> 0.3 s, wall -7 %). Blocks up to 32 MB now come from the heap and the
    heap is never trimmed, so the process keeps its peak (~0.5 GB) until it
    exits. A no-op where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's largest allowed value
    mallopt(m_trim_threshold, 2**31 - 1)


def initial_lambda(bpp: float) -> float:
    """A starting lambda for a target rate (empirical fit on Kodak; re-aimed later)."""
    return 1e-3 * bpp**-1.5


def by_fit_length(steps: int, short: float, long: float) -> float:
    """`short` for fits of at most SHORT_FIT_STEPS, `long` from LONG_FIT_STEPS on, log-log in between."""
    if steps <= SHORT_FIT_STEPS:
        return short
    if steps >= LONG_FIT_STEPS:
        return long
    t = math.log(steps / SHORT_FIT_STEPS) / math.log(LONG_FIT_STEPS / SHORT_FIT_STEPS)
    return math.exp((1 - t) * math.log(short) + t * math.log(long))


def network_learning_rates(steps: int) -> tuple[float, float]:
    """Peak (synthesis, context model) learning rates of a fit of `steps` steps (see LR_NETWORK)."""
    return (by_fit_length(steps, SHORT_FIT_LR_SYNTHESIS, LR_NETWORK),
            by_fit_length(steps, SHORT_FIT_LR_CONTEXT, LR_NETWORK))


def cut_fit_latent_lr_scale(rate: float, planned: int, steps: int) -> float:
    """What a latent group learning at `rate` multiplies it by in a fit of `steps` of `planned` steps.

    1 for a whole fit or a rate already at CUT_FIT_LR_LATENT_MOST; up to
    that rate at CUT_FIT_FAST_LATENTS_SHARE of the schedule or less, log-log
    in between (see CUT_FIT_FAST_LATENTS_SHARE).
    """
    if steps >= planned or rate >= CUT_FIT_LR_LATENT_MOST:
        return 1.0
    most = CUT_FIT_LR_LATENT_MOST / rate
    exponent = math.log(most) / math.log(1 / CUT_FIT_FAST_LATENTS_SHARE)
    return min(most, (planned / max(steps, 1)) ** exponent)


def finest_latent_lr(schedule: Schedule) -> float:
    """The full-resolution latents' peak learning rate under `schedule`."""
    return schedule.lr_latent if schedule.lr_latent_finest is None else schedule.lr_latent_finest


def adam_beta1(steps: int) -> float:
    """Adam's first-moment decay for a fit of `steps` steps (see SHORT_FIT_BETA1): 1 - beta1 by length."""
    return 1 - by_fit_length(steps, 1 - SHORT_FIT_BETA1, 1 - ADAM_BETAS[0])


def adam_beta2(steps: int) -> float:
    """Adam's second-moment decay for a fit of `steps` steps (see SHORT_FIT_BETA2): 1 - beta2 by length."""
    return 1 - by_fit_length(steps, 1 - SHORT_FIT_BETA2, 1 - ADAM_BETAS[1])


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


def probe_step(total: int) -> int:
    """The step at which a fit of `total` steps measures the rate (see RATE_MODEL_STEPS)."""
    return int(PROBE_AT * min(total, RATE_MODEL_STEPS))


def steer_steps(total: int) -> list[int]:
    """The steps at which a fit of `total` steps steers lambda (see STEER_AT)."""
    return sorted({max(probe_step(total) + 1, int(at * total)) for at in STEER_AT})


def steps_until(deadline: float, seconds_per_step: float, done: int, most: int) -> int:
    """How many steps in all fit before `deadline` (time.monotonic()) at this pace, `done` already run.

    At least one more step (so a schedule always ends with its rounding
    phase), never more than `most`.
    """
    affordable = int(max(0.0, deadline - time.monotonic()) / max(seconds_per_step, 1e-9))
    return max(done + 1, min(most, done + affordable))


def predicted_final_log_rate(fraction_done: float, rate_now: float, previous: tuple[float, float]) -> float:
    """ln of the rate a fit will end at, from the rate now and the last checkpoint's (fraction, rate)."""
    log_rate = math.log(max(rate_now, 1e-6))
    left = max(0.0, 1 - fraction_done)
    previous_done, previous_rate = previous
    trend = (log_rate - math.log(max(previous_rate, 1e-6))) * STEER_INTERVAL / (fraction_done - previous_done)
    intervals = left / STEER_INTERVAL
    return log_rate + trend * STEER_TREND_DECAY * (1 - STEER_TREND_DECAY**intervals) / (1 - STEER_TREND_DECAY)


def compensated_final_log_rate(fraction_done: float, rate_now: float, previous: tuple[float, float],
                               last_move: float) -> float:
    """`predicted_final_log_rate` net of the answer to the last lambda move (`last_move`, ln; see TIMED STEERING).

    The part of the answer the rate already shows comes out of the trend,
    and the part still to come is added to the prediction.
    """
    previous_done, previous_rate = previous
    seen = -MOVE_SEEN_BY_NEXT_CHECKPOINT * last_move
    drift_only = predicted_final_log_rate(fraction_done, rate_now, (previous_done, previous_rate * math.exp(seen)))
    return drift_only - (MOVE_RESPONSE - MOVE_SEEN_BY_NEXT_CHECKPOINT) * last_move


def timed_steer_gain(steps: int) -> float:
    """The ln-lambda move per unit of predicted ln miss of a timed fit of `steps` steps (see TIMED STEERING)."""
    return TIMED_STEER_GAIN / MOVE_RESPONSE if steps >= TIMED_STEERING_MIN_STEPS else STEER_GAIN


def steer_log_step(predicted_final_log: float, target_latent_bpp: float, gain: float = STEER_GAIN) -> float:
    """How far to move ln lambda at a checkpoint for a predicted final ln rate (see STEER_AT)."""
    return _clamp(gain * (predicted_final_log - math.log(target_latent_bpp)), -MAX_STEER_STEP, MAX_STEER_STEP)


def predicted_log_lambda(probe_rate: float, probe_mse: float, target_latent_bpp: float) -> float:
    """ln(lambda) that should land on the target, from the rate and MSE at PROBE_AT (see RATE_MODEL)."""
    intercept, per_rate, per_target, per_mse = RATE_MODEL
    return (intercept + per_rate * math.log(max(probe_rate, 1e-6)) + per_target * math.log(target_latent_bpp)
            + per_mse * math.log(max(probe_mse, 1e-10)))


def own_model_log_lambda(model: tuple[float, float, float, float], probe_rate: float, target_latent_bpp: float,
                         image_jpeg_bpp: float) -> float:
    """ln(lambda) that should land on the target by a schedule's own rate model (see OWN_RATE_MODEL_FAST)."""
    intercept, per_rate, per_target, per_jpeg = model
    return (intercept + per_rate * math.log(max(probe_rate, 1e-6)) + per_target * math.log(target_latent_bpp)
            + per_jpeg * math.log(image_jpeg_bpp))


class Fitter:
    """Owns the model, optimizer and lambda across fit and refits."""

    def __init__(self, image: torch.Tensor, model: CocoNet, target: RateTarget, seed: int,
                 full_aim: bool = False, image_jpeg_bpp: float | None = None) -> None:
        keep_freed_memory()
        self.image, self.model, self.target, self.seed = image, model, target, seed
        # Aim and steer at full strength whatever the fit's length (see encoder.BUSY_JPEG_BPP).
        self.full_aim = full_aim
        self._image_jpeg_bpp = image_jpeg_bpp  # `jpeg_bpp` of the image, if the caller has it (else measured once)
        self.gen = np.random.default_rng(seed)
        self.log_lambda = math.log(target.lmbda)
        self.recentre_lambda_range()
        self.rate: float | None = None
        self.probe_rate: float | None = None  # what the rate model saw (calibration, reports)
        self.probe_mse: float | None = None
        # (fraction done, rate, lambda before) per checkpoint; the first only measures, so its
        # lambda is the one the probe set.
        self.steer_log: list[tuple[float, float, float]] = []
        self.last_steer_move = 0.0  # ln lambda moved at the last checkpoint (see TIMED STEERING)
        self.mse_ema: float | None = None
        self.grad_norms: dict[int, float] = {}  # running mean gradient norm per group (Schedule.grad_clip)
        self.steps = 0
        self.seconds_per_step: float | None = None  # measured by `run` (see REPLAN_FIRST)
        # Peak (synthesis, context model) learning rates: the fit plans them by
        # its length, refits keep them (see LR_NETWORK); Adam's decays, planned with
        # them, live in the optimizer (`plan_learning_rates`).
        self.network_lrs: tuple[float, float] | None = None
        # (full-resolution, coarser) latents' learning-rate multipliers: a fit cut
        # short by its deadline raises slow ones (`cut_fit_latent_lr_scale`).
        self.latent_lr_scales = (1.0, 1.0)
        # Groups: the full-resolution latents, the coarser ones, the synthesis
        # MLP, the context model (see Schedule.lr_latent_finest).
        self.opt = Adam([[model.latents[0]], list(model.latents)[1:], model.synthesis.parameters(),
                         model.arm.parameters()], betas=ADAM_BETAS)

    def probe(self, confidence: float = 1.0, own_model: tuple[float, float, float, float] | None = None) -> None:
        """At PROBE_AT: aim lambda (with a rate target), then drop the finest level if lambda is high."""
        self.aim_lambda(confidence, own_model)
        self.drop_finest_level_if_lambda_high()

    def drop_finest_level_if_lambda_high(self) -> None:
        """Past DROP_FINEST_ABOVE go on without the full-resolution latents, lowering an aimed lambda.

        At the probe, and again when the steering takes lambda past the
        threshold (kodim08 at 0.5 bpp, probed at 9.6e-3: the steering raised
        lambda 8x while the rate stayed at 2.4x the target; dropping the level
        at 40 % landed it at 23.39 dB, ad hoc).
        """
        if self.lmbda <= DROP_FINEST_ABOVE or self.model.first_level > 0:
            return
        self.model.drop_finest_level()
        if self.target.latent_bpp:
            self.log_lambda += math.log(DROP_LAMBDA_FACTOR)
            self.recentre_lambda_range()

    def aim_lambda(self, confidence: float = 1.0, own_model: tuple[float, float, float, float] | None = None) -> None:
        """Set lambda from the rate measured now (see RATE_MODEL), once per fit.

        `confidence` in (0, 1] scales the log correction (see RATE_MODEL_STEPS).
        `own_model`: the schedule's own rate model instead (see OWN_RATE_MODEL_FAST).
        """
        if not self.target.latent_bpp:
            return
        self.rate = self.probe_rate = self.latent_bpp()
        self.probe_mse = self.image_mse()
        start = math.log(self.target.lmbda)
        if own_model is None:
            predicted = predicted_log_lambda(self.probe_rate, self.probe_mse, self.target.latent_bpp)
        else:
            predicted = own_model_log_lambda(own_model, self.probe_rate, self.target.latent_bpp, self.image_jpeg_bpp())
        correction = confidence * (predicted - start)
        self.log_lambda = start + _clamp(correction, -MAX_LOG_CORRECTION, MAX_LOG_CORRECTION)
        self.recentre_lambda_range()

    def steer(self, fraction_done: float, strength: float = 1.0, timed_gain: float | None = None,
              may_drop: bool = True) -> None:
        """At a checkpoint of STEER_AT: nudge lambda by the miss the rate measured now predicts.

        `strength` in (0, 1] scales the move (see the comment after
        MAX_STEER_STEP). With a `timed_gain` (a fit under a deadline,
        `timed_steer_gain`) the miss is predicted net of the fit's own last
        move and lambda moves by that gain times it (see TIMED STEERING).
        Without `may_drop` the full-resolution latents stay whatever lambda
        becomes (see FIRM_DROP_UNTIL).
        """
        if not self.target.latent_bpp:
            return
        self.rate = self.latent_bpp()
        previous = (self.steer_log[-1][0], self.steer_log[-1][1]) if self.steer_log else None
        self.steer_log.append((fraction_done, self.rate, self.lmbda))
        if previous is None or fraction_done - previous[0] < STEER_INTERVAL / 2:
            # Measure only: no trend yet (see STEER_AT), or none to trust: a
            # fit re-planned under a deadline can reach a checkpoint barely
            # past (or, at the same step fraction, at) the last one.
            self.last_steer_move = 0.0
            return
        if timed_gain is not None:
            predicted = compensated_final_log_rate(fraction_done, self.rate, previous, self.last_steer_move)
            move = strength * steer_log_step(predicted, self.target.latent_bpp, timed_gain)
        else:
            move = strength * steer_log_step(predicted_final_log_rate(fraction_done, self.rate, previous),
                                             self.target.latent_bpp)
        self.log_lambda += move
        self.last_steer_move = move
        if may_drop:
            self.drop_finest_level_if_lambda_high()
        self.recentre_lambda_range()

    def image_pixels(self) -> np.ndarray:
        """The image being fitted as uint8 [H, W, 3] on the CPU (it came from such pixels: exact)."""
        return torch.round(self.image.detach().cpu() * 255).to(torch.uint8).numpy()

    def image_jpeg_bpp(self) -> float:
        """How busy the image is: its plain JPEG's bits per pixel (`complexity.jpeg_bpp`), measured once."""
        if self._image_jpeg_bpp is None:
            self._image_jpeg_bpp = jpeg_bpp(self.image_pixels())
        return self._image_jpeg_bpp

    def move_lambda(self, log_step: float) -> None:
        """Change lambda by exp(log_step), within the current range."""
        self.log_lambda = _clamp(self.log_lambda + log_step, *self.log_lambda_range)

    def recentre_lambda_range(self) -> None:
        """Centre the range lambda may move in on its current value."""
        self.log_lambda_range = (self.log_lambda - LAMBDA_SPAN_DOWN, self.log_lambda + LAMBDA_SPAN_UP)

    def lower_lambda_floor(self) -> None:
        """Let lambda fall LAMBDA_SPAN_DOWN below where it is now; the ceiling stays.

        Each refit may lower lambda further (an undershooting file only needs
        more bits, which is safe), but never raise it past the ceiling set when
        the refits began (which is how latents collapse).
        """
        lo, hi = self.log_lambda_range
        self.log_lambda_range = (min(lo, self.log_lambda - LAMBDA_SPAN_DOWN), hi)

    @property
    def lmbda(self) -> float:
        return math.exp(self.log_lambda)

    def _window(self, crop: int) -> Window:
        """A random crop, clipped at the image border so coverage is uniform.

        Drawing the corner uniformly among the positions where a full crop
        fits would show a border pixel to ~1/500 of the steps and a central one
        to ~1/6 on a Kodak image: the borders would barely train. Drawing it
        from one crop before the image to its last pixel and clipping gives
        every pixel the same chance.
        """
        h, w = self.model.height, self.model.width
        r0 = int(self.gen.integers(1 - crop, h)) if crop < h else 0
        c0 = int(self.gen.integers(1 - crop, w)) if crop < w else 0
        return Window(max(0, r0), min(h, r0 + crop), max(0, c0), min(w, c0 + crop))

    def plan_learning_rates(self, schedule: Schedule, steps: int) -> None:
        """The networks' peak learning rates and Adam's decays for a fit of `steps` steps; the schedule's own win.

        Also how much faster the latents learn if `steps` is short of the
        schedule's (`cut_fit_latent_lr_scale`). `step` plans them by the
        schedule's length if nothing has (a refit with no fit before it, or
        a caller stepping by hand).
        """
        self.latent_lr_scales = (cut_fit_latent_lr_scale(finest_latent_lr(schedule), schedule.iterations, steps),
                                 cut_fit_latent_lr_scale(schedule.lr_latent, schedule.iterations, steps))
        synthesis, context = (LR_NETWORK, LR_NETWORK) if schedule.pretrained else network_learning_rates(steps)
        self.network_lrs = (synthesis if schedule.lr_synthesis is None else schedule.lr_synthesis,
                            context if schedule.lr_context is None else schedule.lr_context)
        self.opt.betas = schedule.planned_adam_betas(steps)

    def step(self, schedule: Schedule, lr_scale: float, mode: str,
             temperature: float | None = None) -> dict[str, float]:
        """One optimizer step on a random window; returns its statistics.

        `temperature`: soft rounding of the noisy latents (see SOFT_ROUNDING);
        None for plain noise.
        """
        model = self.model
        if self.network_lrs is None:
            self.plan_learning_rates(schedule, schedule.iterations)
        assert self.network_lrs is not None
        rates = (finest_latent_lr(schedule) * self.latent_lr_scales[0], schedule.lr_latent * self.latent_lr_scales[1],
                 *self.network_lrs)
        for group, rate in zip(self.opt.param_groups, rates):
            group["lr"] = rate * lr_scale
        win = self._window(schedule.crop)
        # Mixed quantization in the final phase: the decoder sees rounded
        # latents, but the rate is charged on noisy ones. Rounding has no rate
        # gradient inside a bin, so under pure straight-through a latent at
        # 0.3 drifts freely to 0.6 and the real rate creeps up while lambda
        # climbs to stop it; noise keeps pricing the magnitude continuously.
        if mode == "noise":
            q, q_rate = model.noisy_latents(win, temperature)
        else:
            q, q_rate = model.crop_latents(win, mode), model.noisy_latents(win, temperature)[1]  # type: ignore[arg-type]
        rec = model.synthesize(q, win)
        target = self.image[win.r0 : win.r1, win.c0 : win.c1].reshape(-1, 3)
        mse = ((rec - target) ** 2).mean()
        # Clipped border windows are smaller: weigh by area so every pixel
        # counts the same whatever window it falls in.
        weight = win.n_pixels / (min(schedule.crop, self.model.height) * min(schedule.crop, self.model.width))
        bits, _ = model.latent_bits(q_rate, win)
        loss = weight * (mse + self.lmbda * bits / win.n_pixels)
        self.opt.zero_grad()
        loss.backward()
        if schedule.grad_clip is not None:
            self.clip(schedule.grad_clip)
        self.opt.step()
        self.steps += 1
        mse_value = float(mse.detach())
        self.mse_ema = mse_value if self.mse_ema is None else 0.9 * self.mse_ema + 0.1 * mse_value
        return {"psnr": -10 * math.log10(max(self.mse_ema, 1e-10)), "lambda": self.lmbda}

    def clip(self, multiple: float) -> None:
        """Scale each group's gradient down to `multiple` x its running mean norm (see Schedule.grad_clip)."""
        for i, group in enumerate(self.opt.param_groups):
            mean = self.grad_norms.get(i)
            limit = math.inf if mean is None else multiple * mean  # the first norm only starts the mean
            norm = min(float(torch.nn.utils.clip_grad_norm_(group["params"], limit)), limit)
            self.grad_norms[i] = norm if mean is None else GRAD_NORM_DECAY * mean + (1 - GRAD_NORM_DECAY) * norm

    def displayed_rate(self) -> float:
        """The whole-image latent rate for the progress display, re-measured every DISPLAY_EVERY steps.

        Only a progress display reads it: an encode without one (the API,
        the benchmarks) skips the measurement, ~2 % of a training step's time.
        """
        if self.rate is None or self.steps % DISPLAY_EVERY == 0:
            self.rate = self.latent_bpp()
        return self.rate

    def bands(self) -> list[Window]:
        """Full-width row bands that split every level's cells exactly.

        Row bands keep the tensors cache-sized: one whole-image pass allocates
        ~0.5 GB and costs more than a training step in page faults.
        """
        model = self.model
        band = 2 ** (model.arch.n_levels - 1)
        band *= max(1, MEASURE_ROWS // band)
        return [Window(r0, min(model.height, r0 + band), 0, model.width) for r0 in range(0, model.height, band)]

    @torch.no_grad()
    def image_mse(self) -> float:
        """Whole-image mean squared error with rounded latents (float network)."""
        total = 0.0
        for win in self.bands():
            rec = self.model.synthesize(self.model.crop_latents(win, "round"), win).clamp(0, 1)
            target = self.image[win.r0 : win.r1, win.c0 : win.c1].reshape(-1, 3)
            total += float(((rec - target) ** 2).sum())
        return total / (3 * self.model.height * self.model.width)

    @torch.no_grad()
    def latent_bpp(self, mode: str = "round") -> float:
        """Whole-image latent rate; with rounded latents, what the file will carry.

        Crop estimates are biased (crops see the centre more often than the
        border), and the LATS section matches this figure to within ~1 %.
        """
        model = self.model
        bits = 0.0
        for win in self.bands():
            crops = model.crop_latents(win, mode)  # type: ignore[arg-type]
            bits += float(model.latent_bits(crops, win)[0])
        return bits / (model.height * model.width)

    def run(self, schedule: Schedule, progress: ProgressFn | None = None,
            deadline: float | None = None, phase: str = "fit", lr_peak: float = 1.0) -> int:
        """Run a full schedule (noise then STE); returns steps done.

        The "fit" phase aims lambda at PROBE_AT (`probe`) and steers it at
        STEER_AT (`steer`; net of its own moves under a deadline or if the
        schedule says so, see TIMED STEERING); a "refit" keeps lambda as it
        is. With a deadline (time.monotonic()), the number of steps is re-planned from the
        measured speed (REPLAN_FIRST, REPLAN_EVERY) so the schedule ends by
        the deadline with its rounding phase; it never grows past the
        schedule's own length. The fit plans the learning rates (the
        networks', and the latents' if the deadline cuts it) and Adam's
        decays for the length it will have (`plan_learning_rates`); a refit
        keeps the fit's.
        """
        total = schedule.iterations
        if phase == "fit":
            self.plan_learning_rates(schedule, total)
        it = 0
        probed = False
        checkpoints = set(steer_steps(total))
        clock_from = time.monotonic()  # reset after the first step (see REPLAN_FIRST)
        while it < total:
            frac = it / total
            lr_scale = lr_peak * (schedule.lr_floor + (1 - schedule.lr_floor) * 0.5 * (1 + math.cos(math.pi * frac)))
            if phase == "fit" and frac < schedule.warmup:
                lr_scale *= (it + 1) / (schedule.warmup * total + 1)
            mode = "noise" if frac < 1 - schedule.ste_fraction else "ste"
            if phase == "fit" and not probed and 0 < probe_step(total) <= it:
                whole = self.full_aim or schedule.own_rate_model is not None
                self.probe(confidence=1.0 if whole else min(1.0, total / RATE_MODEL_STEPS),
                           own_model=schedule.own_rate_model)
                probed = True
            if phase == "fit" and it in checkpoints:
                full = deadline is not None or self.full_aim
                # A fit the deadline has not cut (yet) steers as an untimed one (encoder.GENEROUS_TIME_LIMIT).
                firm = schedule.compensated_steering and (deadline is None or total == schedule.iterations)
                self.steer(frac, strength=1.0 if full else min(1.0, total / RATE_MODEL_STEPS),
                           timed_gain=(timed_steer_gain(total)
                                       if deadline is not None or schedule.compensated_steering else None),
                           may_drop=not firm or frac <= FIRM_DROP_UNTIL)
            stats = self.step(schedule, lr_scale, mode, schedule.temperature(frac, phase))
            it += 1
            if it == 1:
                clock_from = time.monotonic()
            elif it == REPLAN_FIRST or (it > REPLAN_FIRST and it % REPLAN_EVERY == 0):
                self.seconds_per_step = (time.monotonic() - clock_from) / (it - 1)
                if deadline is not None:
                    total = steps_until(deadline, self.seconds_per_step, it, schedule.iterations)
                    checkpoints = set(steer_steps(total))
                    if phase == "fit":
                        self.plan_learning_rates(schedule, total)
            if progress:
                progress(it, total, {**stats, "bpp": self.displayed_rate()})
        return it
