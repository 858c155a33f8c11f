"""The default effort's two fits, run side by side in worker processes (`inrcodec.train.side_by_side`)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import numpy as np
import pytest

from inrcodec.errors import InrcodecError
from inrcodec.train import encoder, side_by_side
from inrcodec.train.encoder import EncodeOptions, EncodeResult, encode_array


def _image() -> np.ndarray:
    y, x = np.mgrid[0:32, 0:40]
    noise = np.random.default_rng(3).integers(0, 40, (32, 40, 3))
    return np.clip(np.stack([x * 6, y * 7, (x + y) * 3], axis=-1) + noise, 0, 255).astype(np.uint8)


def test_a_default_encode_is_the_better_of_its_two_fits_each_as_one_thread_writes_it(torch_threads) -> None:
    pixels = _image()
    # A fixed lambda: a rate this small image cannot reach would send both fits through the whole landing.
    opts = EncodeOptions(bpp=None, lmbda=1e-3, iterations=40, device="cpu")
    torch_threads(2)
    seen: list[tuple[int, int]] = []
    result = encode_array(pixels, opts, progress=lambda it, total, stats: seen.append((it, total)))
    torch_threads(1)
    alone = [encoder._encode_once(pixels, opts, schedule, time.monotonic(), None, None)
             for schedule in encoder.default_candidates(None)]
    assert alone[0].data != alone[1].data
    best = max(alone, key=lambda r: encoder.candidate_rank(r.psnr, r.bpp, None, opts.lmbda))
    assert result.data == best.data and result.psnr == best.psnr
    assert result.iterations == sum(r.iterations for r in alone) == 80
    # Progress is both fits' steps summed, and reaches the end.
    assert seen and all(it <= total for it, total in seen) and seen[-1] == (80, 80)


def _fake_result(number: int, bpp: float, psnr: float) -> EncodeResult:
    return EncodeResult(bytes([number]), bpp, psnr, 1.0, 100, 1e-3, 8, 8)


def test_one_thread_a_short_time_limit_the_fast_effort_or_a_high_rate_fit_once(monkeypatch: pytest.MonkeyPatch,
                                                                   torch_threads) -> None:
    once: list[tuple[object, float | None]] = []
    beside: list[tuple[tuple, int, float | None]] = []

    def fake_once(pixels, opts, schedule, start, limit, progress):  # noqa: ANN001, ANN202
        once.append((schedule, limit))
        return _fake_result(1, 0.5, 30.0)

    def fake_side_by_side(pixels, opts, schedules, threads, progress, start, limit):  # noqa: ANN001, ANN202
        beside.append((schedules, threads, limit))
        return [_fake_result(1, 0.50, 30.0), _fake_result(2, 0.51, 30.4)]  # the second is better at the request

    monkeypatch.setattr(encoder, "_encode_once", fake_once)
    monkeypatch.setattr(encoder, "encode_side_by_side", fake_side_by_side)
    pixels = _image()
    soft, second = encoder.default_candidates(0.5)  # untimed: soft rounding with another seed (SEED_PAIR)
    plain = encoder.default_candidates(0.5, timed=True)[1]
    assert second.seed_offset == 1 and plain.soft_rounding is None
    torch_threads(1)
    encode_array(pixels, EncodeOptions(bpp=0.5))
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=60.0))
    torch_threads(2)
    # Under WAVEFRONT_MIN_TIME_LIMIT both candidates would be the same plain-noise fit on format 1.0.
    assert encoder.PAIR_MIN_TIME_LIMIT >= encoder.WAVEFRONT_MIN_TIME_LIMIT
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=encoder.WAVEFRONT_MIN_TIME_LIMIT * 0.99))
    encode_array(pixels, EncodeOptions(bpp=0.5, effort="fast"))
    assert [schedule for schedule, _ in once] == [soft, soft, soft, encoder.schedule_for("fast", 0.5)]
    assert not beside
    torch_threads(4)
    result = encode_array(pixels, EncodeOptions(bpp=0.5))
    assert beside == [((soft, second), 2, None)] and result.data == bytes([2]) and result.iterations == 200
    torch_threads(2)
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=encoder.PAIR_MIN_TIME_LIMIT))
    assert beside[-1] == ((soft, plain), 1, encoder.PAIR_MIN_TIME_LIMIT)
    # From GENEROUS_TIME_LIMIT the untimed pair, under the limit.
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=encoder.GENEROUS_TIME_LIMIT * 0.99))
    assert beside[-1] == ((soft, plain), 1, encoder.GENEROUS_TIME_LIMIT * 0.99)
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=encoder.GENEROUS_TIME_LIMIT))
    assert beside[-1] == ((soft, second), 1, encoder.GENEROUS_TIME_LIMIT)
    del beside[-2:]
    # A shorter limit cuts both fits: one fit with every thread instead.
    encode_array(pixels, EncodeOptions(bpp=0.5, time_limit=encoder.PAIR_MIN_TIME_LIMIT * 0.99))
    assert len(beside) == 2 and once[-1] == (soft, encoder.PAIR_MIN_TIME_LIMIT * 0.99)
    # From HIGH_RATE_BPP the soft-rounding fit alone, timed or not (SINGLE_FIT_FROM_HIGH_RATE).
    high = encoder.schedule_for("default", encoder.HIGH_RATE_BPP)
    assert high.soft_rounding is not None
    encode_array(pixels, EncodeOptions(bpp=encoder.HIGH_RATE_BPP))
    encode_array(pixels, EncodeOptions(bpp=2.0, time_limit=120.0))
    assert len(beside) == 2 and once[-2:] == [(high, None), (encoder.schedule_for("default", 2.0), 120.0)]
    # Just under it, the pair; and `--effort max` keeps its long fit after the single one.
    encode_array(pixels, EncodeOptions(bpp=encoder.HIGH_RATE_BPP * 0.99))
    assert len(beside) == 3
    encode_array(pixels, EncodeOptions(bpp=encoder.HIGH_RATE_BPP, effort="max"))
    assert len(beside) == 3 and once[-2:] == [(high, None), (encoder.SCHEDULES["max"], None)]


def test_timed_workers_end_within_the_limit_counted_from_the_callers_start(torch_threads) -> None:
    opts = EncodeOptions(bpp=None, lmbda=1e-3, iterations=20000, device="cpu")
    start = time.monotonic() - 1.0  # the caller began a second ago: the workers get what is left
    results = side_by_side.encode_side_by_side(_image(), opts, encoder.default_candidates(None), 1,
                                               start=start, limit=4.0)
    # Untimed, 20000 steps would take minutes; the limit cuts them (the workers' start-up, ~1.3 s,
    # comes out of it, and an encode may run a little past it).
    assert time.monotonic() - start < 4.0 * 1.5 + 2.0
    assert all(0 < r.iterations < 20000 for r in results)
    assert all(r.seconds < 4.0 * 1.5 for r in results)


def test_a_worker_that_fails_is_a_clean_error_quoting_its_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = EncodeOptions(bpp=None, lmbda=1e-3, iterations=5, device="cpu")
    schedules = encoder.default_candidates(None)
    cases = {"import sys; sys.stderr.write('boom'); sys.exit(3)": ["ended without a result", "exit status 3", "boom"],
             # Nonsense from a worker that goes on running: the error comes at once, not when it ends.
             "import sys, time; sys.stdin.buffer.read(); print('not json', flush=True); time.sleep(120)":
                 ["unexpected line", "not json"],
             "import os, signal; os.kill(os.getpid(), signal.SIGKILL)": ["killed by signal 9"],
             "raise ValueError('deep inside')": ["exit status 1", "ValueError: deep inside"]}
    for script, words in cases.items():
        monkeypatch.setattr(side_by_side, "worker_command", lambda script=script: [sys.executable, "-c", script])
        began = time.monotonic()
        with pytest.raises(InrcodecError) as error:
            side_by_side.encode_side_by_side(_image(), opts, schedules, 1)
        assert time.monotonic() - began < 60
        assert all(word in str(error.value) for word in words), str(error.value)
        assert "Traceback" not in str(error.value)


def test_an_exception_in_a_worker_s_encode_is_reported_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither a rate nor a lambda: the API refuses that, so only a worker's own encode can meet it.
    opts = EncodeOptions(bpp=None, lmbda=None, iterations=5, device="cpu")
    with pytest.raises(InrcodecError) as error:
        side_by_side.encode_side_by_side(_image(), opts, encoder.default_candidates(None), 1)
    message = str(error.value)
    assert message.startswith("encode candidate ") and " failed: " in message and "\n" not in message


def test_schedules_and_options_reach_a_worker_unchanged() -> None:
    schedules = [*encoder.SCHEDULES.values(), *encoder.default_candidates(0.5), *encoder.default_candidates(1.0)]
    for schedule in schedules:
        sent = json.loads(json.dumps(dataclasses.asdict(schedule)))
        assert side_by_side._schedule_from(sent) == schedule
    opts = EncodeOptions(bpp=None, lmbda=2e-3, effort="default", seed=7, iterations=12)
    assert EncodeOptions(**json.loads(json.dumps(dataclasses.asdict(opts)))) == opts
