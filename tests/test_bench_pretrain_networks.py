"""`python -m bench.pretrain_networks`: shared networks fitted across images, written without pickle, loadable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helper import image_folder

from bench import fixed_lambda as fl
from bench import pretrain_networks as pn
from bench.results import read_csv
from inrcodec.train import encoder
from inrcodec.train import pretrained
from inrcodec.train.model import CocoNet


def test_network_state_round_trips_through_json() -> None:
    torch.manual_seed(1)
    source = CocoNet(16, 16, encoder.ARCHITECTURE)
    torch.manual_seed(2)
    target = CocoNet(32, 24, encoder.ARCHITECTURE)
    assert not torch.equal(source.synthesis[0].weight, target.synthesis[0].weight)
    pretrained.load_network_state(target, json.loads(json.dumps(pretrained.network_state(source))))
    for part in ("synthesis", "arm"):
        for a, b in zip(getattr(source, part).parameters(), getattr(target, part).parameters()):
            assert torch.equal(a, b)


def test_a_tiny_run_trains_shared_networks_that_fits_can_start_from(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"a.png": (40, 32), "b.png": (24, 48)})
    out = tmp_path / "out"
    pn.main(["--images", str(images), "--names", "a,b", "--lambdas", "1e-3,1e-2", "--steps", "500",
             "--batch", "2", "--crop", "32", "--out", str(out)])
    log = read_csv(out / "pretrain.csv")
    assert [int(r["step"]) for r in log] == [250, 500]
    assert float(log[-1]["psnr"]) > float(log[0]["psnr"])  # the shared networks learned something
    payload = json.loads((out / "networks.json").read_text())
    assert payload["trained_on"] == ["a", "b"] and payload["lambdas"] == [1e-3, 1e-2]
    model = CocoNet(40, 32, encoder.ARCHITECTURES["default"])
    pretrained.load_networks_file(out / "networks.json", model)
    assert model.synthesis[0].weight.tolist() == payload["networks"]["synthesis.0.weight"]
    other = CocoNet(40, 32, replace(encoder.ARCHITECTURES["default"], synth_hidden=(8,)))
    with pytest.raises(ValueError, match="another architecture"):
        pretrained.load_networks_file(out / "networks.json", other)
    # A fixed-lambda variant starts from them.
    variant = fl.variant(f"init={out / 'networks.json'}+synth-0.002", 20)
    assert variant.networks == out / "networks.json" and variant.schedule.lr_synthesis == 0.002
    with pytest.raises(ValueError, match="no file"):
        fl.variant(f"init={out / 'missing.json'}")
    flout = tmp_path / "fl"
    fl.main(["--images", str(images), "--pick", "a:1e-3", "--variants", f"base,init={out / 'networks.json'}",
             "--steps", "20", "--out", str(flout)])
    rows = read_csv(flout / fl.CSV_NAME)
    assert len(rows) == 2 and rows[0]["psnr"] != rows[1]["psnr"]
