"""Fitting a CocoNet to one image under a rate target.

Loss: MSE + lambda * (estimated latent bits / pixels), images in [0, 1].
Schedule (after C3): Adam with a cosine-decayed learning rate; uniform noise
on the latents for most of training, then straight-through rounding so the
rate estimate and the reconstruction match what the decoder will see.

Rate control: instead of asking the user for lambda we steer it. A smoothed
estimate of the whole-image latent rate is compared with the target (the
requested bits minus the header and network bits) and log(lambda) moves in
proportion to the log of their ratio every step. Before that, at JUMP_AT, lambda
jumps once by what the measured rate says, so the controller starts near the
image's own lambda instead of a generic one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .model import CocoNet, Window

ProgressFn = Callable[[int, int, dict[str, float]], None]
# During the main fit lambda stays within [initial / 10, initial * 3]: the
# empirical start is within ~3x of the right value on most Kodak images, and
# allowed to climb to 30x, the controller overshoots and the latents collapse
# (kodim03 at 0.25 bpp ended at 0.12 bpp). A busy image (kodim08) needs ~10x
# more at 0.25 bpp, though: refits, which run only when the file missed,
# re-centre the range on the current lambda with the wider upward span.
LAMBDA_SPAN_DOWN = math.log(10.0)
LAMBDA_SPAN_UP = math.log(3.0)
REFIT_LAMBDA_SPAN_UP = math.log(30.0)
CONTROL_EVERY = 20  # steps between whole-image rate measurements
MEASURE_ROWS = 128  # image rows per band of a rate measurement
MAX_LOG_LAMBDA_STEP = 0.1  # per control step: lambda moves at most 10 % per 20 steps
CONTROL_START = 0.35  # fraction of the schedule before lambda moves: early rates overshoot the final one up to 5x
# Once, early in the fit, lambda jumps by what the measured rate says: the
# empirical start is image-blind and off by up to ~5x on Kodak (busy images
# need far more lambda), and the slew-limited controller alone then either
# hits its clamp (kodim05 at 1 bpp: the dead zone had to cut 25 % of the
# rate, -2 dB) or crawls. By ~15 % of the schedule the rate at fixed lambda
# has stopped growing. Rate goes roughly as lambda**-0.45..0.8 (measured on
# Kodak), but the rate measured this early still overstates the final one by
# up to ~2x on smooth images. So the jump is half the log correction (as if
# the elasticity were 2) and at most 4x: it errs short, which the controller
# then finishes, rather than long, which collapses the latents (the full
# correction, 8x at most, collapsed all 12 fits at 0.25 bpp and 2 at 0.5:
# bench/results/kodak-2026-11-24c).
JUMP_AT = 0.15
ELASTICITY = 2.0
MAX_LOG_JUMP = math.log(4.0)


@dataclass(frozen=True)
class Schedule:
    """Training hyper-parameters of one effort level.

    Attributes:
        iterations: optimizer steps.
        crop: side of the square training window in pixels.
        lr_latent, lr_network: initial Adam learning rates.
        ste_fraction: final fraction of steps with straight-through rounding.
        control_gain: step of log(lambda) per unit log rate error.
    """

    iterations: int
    crop: int = 256
    lr_latent: float = 0.1
    lr_network: float = 0.005
    ste_fraction: float = 0.15
    control_gain: float = 0.005


@dataclass
class RateTarget:
    """What the controller aims at: latent bits per pixel (None: fixed lambda)."""

    latent_bpp: float | None
    lmbda: float


def initial_lambda(bpp: float) -> float:
    """A starting lambda for a target rate (empirical fit on Kodak; steered later)."""
    return 1e-3 * bpp**-1.5


class Fitter:
    """Owns the model, optimizer and controller state across fit and refit."""

    def __init__(self, image: torch.Tensor, model: CocoNet, target: RateTarget, seed: int,
                 jump: bool = True) -> None:
        self.image, self.model, self.target, self.seed = image, model, target, seed
        self.jump = jump  # re-aim lambda once at JUMP_AT (see there)
        self.gen = np.random.default_rng(seed)
        self.log_lambda = math.log(target.lmbda)
        # Anti-windup: early in training the rate cannot follow lambda (the
        # latents are still growing), so keep lambda within a factor of the
        # empirical start instead of letting the integrator run away.
        self._centre_lambda_range(LAMBDA_SPAN_UP)
        self.rate: float | None = None
        self.mse_ema: float | None = None
        self.steps = 0
        net_params = list(model.synthesis.parameters()) + list(model.arm.parameters())
        self.opt = torch.optim.Adam([
            {"params": list(model.latents.parameters()), "lr": 0.0},
            {"params": net_params, "lr": 0.0},
        ])

    def jump_lambda(self) -> None:
        """Re-aim lambda from the measured whole-image rate, once (see JUMP_AT)."""
        if not self.target.latent_bpp:
            return
        self.rate = self.latent_bpp()
        error = math.log(max(self.rate, 1e-6) / self.target.latent_bpp)
        jump = max(-MAX_LOG_JUMP, min(MAX_LOG_JUMP, error / ELASTICITY))
        self.log_lambda += jump
        self._centre_lambda_range(LAMBDA_SPAN_UP)

    def recentre_lambda_range(self) -> None:
        """Before a refit: let lambda move the refit span around its current value."""
        self._centre_lambda_range(REFIT_LAMBDA_SPAN_UP)

    def _centre_lambda_range(self, span_up: float) -> None:
        self.log_lambda_range = (self.log_lambda - LAMBDA_SPAN_DOWN, self.log_lambda + span_up)

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

    def step(self, schedule: Schedule, lr_scale: float, mode: str, control: bool) -> dict[str, float]:
        """One optimizer step on a random window; returns its statistics."""
        model = self.model
        self.opt.param_groups[0]["lr"] = schedule.lr_latent * lr_scale
        self.opt.param_groups[1]["lr"] = schedule.lr_network * lr_scale
        win = self._window(schedule.crop)
        q = model.crop_latents(win, mode)  # type: ignore[arg-type]
        rec = model.synthesize(q, win)
        target = self.image[win.r0 : win.r1, win.c0 : win.c1].reshape(-1, 3)
        mse = ((rec - target) ** 2).mean()
        # Clipped border windows are smaller: weigh by area so every pixel
        # counts the same whatever window it falls in.
        weight = win.n_pixels / (min(schedule.crop, self.model.height) * min(schedule.crop, self.model.width))
        # Mixed quantization in the final phase: the decoder sees rounded
        # latents, but the rate is charged on noisy ones. Rounding has no rate
        # gradient inside a bin, so under pure straight-through a latent at
        # 0.3 drifts freely to 0.6 and the real rate creeps up while lambda
        # climbs to stop it; noise keeps pricing the magnitude continuously.
        q_rate = q if mode == "noise" else model.crop_latents(win, "noise")
        bits, _ = model.latent_bits(q_rate, win)
        loss = weight * (mse + self.lmbda * bits / win.n_pixels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        if self.rate is None or self.steps % CONTROL_EVERY == 0:
            self.rate = self.latent_bpp()
            if control and self.target.latent_bpp:
                # Integral control of log(lambda) on the log rate error.
                error = math.log(max(self.rate, 1e-6) / self.target.latent_bpp)
                lo, hi = self.log_lambda_range
                # Slew limit: the rate answers lambda with a lag of ~100 steps;
                # faster moves overshoot and swing.
                step = schedule.control_gain * CONTROL_EVERY * error
                step = max(-MAX_LOG_LAMBDA_STEP, min(MAX_LOG_LAMBDA_STEP, step))
                self.log_lambda = min(hi, max(lo, self.log_lambda + step))
        mse_value = float(mse.detach())
        self.mse_ema = mse_value if self.mse_ema is None else 0.9 * self.mse_ema + 0.1 * mse_value
        return {"psnr": -10 * math.log10(max(self.mse_ema, 1e-10)), "bpp": self.rate, "lambda": self.lmbda}

    @torch.no_grad()
    def latent_bpp(self, mode: str = "round") -> float:
        """Whole-image latent rate; with rounded latents, what the file will carry.

        Crop estimates are biased (crops see the centre more often than the
        border), and the LATS section matches this figure to within ~1 %.
        """
        model = self.model
        band = 2 ** (model.arch.n_levels - 1)  # bands on this grid split every level's cells exactly
        band *= max(1, MEASURE_ROWS // band)
        bits = 0.0
        for r0 in range(0, model.height, band):
            # Row bands keep the tensors cache-sized: one whole-image pass
            # allocates ~0.5 GB and costs more than a training step in page faults.
            win = Window(r0, min(model.height, r0 + band), 0, model.width)
            crops = model.crop_latents(win, mode)  # type: ignore[arg-type]
            bits += float(model.latent_bits(crops, win)[0])
        return bits / (model.height * model.width)

    def run(self, schedule: Schedule, progress: ProgressFn | None = None,
            deadline: float | None = None, phase: str = "fit", lr_peak: float = 1.0) -> int:
        """Run a full schedule (noise then STE); returns steps done.

        With a deadline (time.monotonic()), the number of steps is re-planned
        from the measured speed after a few steps so the schedule still ends
        with its rounding phase.
        """
        total = schedule.iterations
        start = time.monotonic()
        it = 0
        while it < total:
            frac = it / total
            lr_scale = lr_peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            mode = "noise" if frac < 1 - schedule.ste_fraction else "ste"
            if phase == "fit" and self.jump and it == int(JUMP_AT * total) and it > 0:
                self.jump_lambda()
            stats = self.step(schedule, lr_scale, mode, control=frac > CONTROL_START or phase != "fit")
            it += 1
            if deadline is not None and it == 10:
                per_step = (time.monotonic() - start) / it
                total = max(it + 1, min(total, int((deadline - time.monotonic()) / per_step) + it))
            if progress:
                progress(it, total, stats)
        return it
