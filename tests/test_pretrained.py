"""The encoder's pretrained starting networks: shipped, loadable, used where the schedule says."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inrcodec.train import encoder, pretrained
from inrcodec.train.fit import LR_NETWORK, Fitter, RateTarget, Schedule, network_learning_rates
from inrcodec.train.model import CocoNet


def test_the_shipped_networks_fit_the_encoders_architecture() -> None:
    # A new ARCHITECTURE needs new pretrained networks (bench.pretrain_networks):
    # without them every fit would silently start from random weights.
    payload = json.loads(pretrained.PRETRAINED_PATH.read_text())
    arch = encoder.ARCHITECTURE
    assert payload["architecture"] == {"n_levels": arch.n_levels, "synth_hidden": list(arch.synth_hidden),
                                       "arm_hidden": list(arch.arm_hidden)}
    assert "kodim" not in " ".join(payload["trained_on"])  # never the images the codec is judged on
    model = CocoNet(20, 30, arch)
    assert pretrained.start_from_pretrained(model)
    assert model.synthesis[0].weight.tolist() == payload["networks"]["synthesis.0.weight"]
    assert model.arm[-1].bias.tolist() == payload["networks"]["arm.4.bias"]


def test_other_architectures_keep_their_random_networks() -> None:
    torch.manual_seed(0)
    model = CocoNet(20, 30, replace(encoder.ARCHITECTURE, synth_hidden=(8,)))
    before = [p.clone() for p in model.parameters()]
    assert not pretrained.start_from_pretrained(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_new_model_starts_pretrained_only_when_the_schedule_says_so() -> None:
    shipped = json.loads(pretrained.PRETRAINED_PATH.read_text())["networks"]["synthesis.0.weight"]
    torch.manual_seed(0)
    arch = encoder.ARCHITECTURE
    started = encoder.new_model(16, 16, Schedule(iterations=10, pretrained=True), arch)
    assert started.synthesis[0].weight.tolist() == shipped
    torch.manual_seed(0)
    assert encoder.new_model(16, 16, Schedule(iterations=10), arch).synthesis[0].weight.tolist() != shipped


def test_pretrained_networks_learn_at_the_long_fits_rate_whatever_the_length() -> None:
    image = torch.rand(16, 16, 3)
    for steps in (100, 2000, 9000):
        fitter = Fitter(image, CocoNet(16, 16, encoder.ARCHITECTURE), RateTarget(None, 1e-3), seed=0)
        fitter.plan_learning_rates(Schedule(iterations=steps, pretrained=True), steps)
        assert fitter.network_lrs == (LR_NETWORK, LR_NETWORK)
        fitter.plan_learning_rates(Schedule(iterations=steps), steps)
        assert fitter.network_lrs == network_learning_rates(steps)


def test_unreadable_or_mismatched_networks_files_are_refused(tmp_path: Path) -> None:
    model = CocoNet(16, 16, encoder.ARCHITECTURE)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a networks file"):
        pretrained.load_networks_file(bad, model)
    payload = json.loads(pretrained.PRETRAINED_PATH.read_text())
    payload["networks"]["synthesis.0.weight"] = [[0.0]]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="does not fit"):
        pretrained.load_networks_file(wrong, model)
