"""Pretrained starting weights for the synthesis MLP and the context model.

A fit from random networks spends much of a short schedule learning what any
image teaches: how a latent pyramid maps to colour, how latents spread around
their parents. `pretrained_networks.json` holds networks fitted jointly to
other images (`python -m bench.pretrain_networks`: Set5, never the Kodak
images the codec is judged on), and a fit whose schedule says so
(`Schedule.pretrained`) starts from them. Only the encoder reads it: the
file still carries every weight, so decoders need nothing new.

No effort starts from them yet. At fixed lambdas a 420-step fit from them
gains ~0.6 dB at the same rate, a 4200-step one nothing
(bench/results/fixed-lambda-pretrained-2026-12-01); but `--effort fast`
from them lost end to end (BD-rate vs JPEG 4:2:0 +80.4 % -> +149 %,
bench/results/kodak-fast-pretrained-2026-12-01): its fits lean on the
full-resolution latents and end far from their rate (0.6-2.3x the target
at the generic lambda, bench/results/rate-model-fast-pretrained-2026-12-01),
and the landing after a short fit pays for every miss.

The JSON holds the architecture and each tensor as nested lists of numbers
(state-dict names, "synthesis.0.weight" ...), nothing executable.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from .model import CocoNet

PRETRAINED_PATH = Path(__file__).with_name("pretrained_networks.json")
PARTS = ("synthesis", "arm")
# Format 3.0's upsampling taps (`model.UpSynthesis`) belong to one image: a
# networks file holds the MLPs only, and a model starts its taps at bicubic's.
NOT_SHARED = ("up_taps",)


def network_state(model: CocoNet) -> dict[str, list]:
    """The synthesis and context model's weights as nested lists, by state-dict name."""
    return {f"{part}.{name}": value.detach().cpu().tolist()
            for part in PARTS for name, value in getattr(model, part).state_dict().items() if name not in NOT_SHARED}


def load_network_state(model: CocoNet, state: dict[str, list]) -> None:
    """Copy weights written by `network_state` into a model of the same architecture.

    Raises:
        ValueError: a tensor is missing, extra or of another shape.
    """
    for part in PARTS:
        module = getattr(model, part)
        prefix = f"{part}."
        try:
            tensors = {name[len(prefix):]: torch.tensor(value, dtype=torch.float32)
                       for name, value in state.items() if name.startswith(prefix)}
            device = next(module.parameters()).device
            missing, unexpected = module.load_state_dict({name: t.to(device) for name, t in tensors.items()},
                                                         strict=False)
            if unexpected or set(missing) - set(NOT_SHARED):
                raise ValueError(f"missing {sorted(set(missing) - set(NOT_SHARED))}, unexpected {sorted(unexpected)}")
        except (RuntimeError, TypeError, ValueError) as error:
            raise ValueError(f"pretrained {part} does not fit the model: {error}") from None


def read_networks_file(path: Path) -> dict:
    """A networks file's contents (architecture and networks), checked for their keys.

    Raises:
        ValueError: not a networks file.
    """
    try:
        payload = json.loads(path.read_text())
        arch = payload["architecture"]
        key = (int(arch["n_levels"]), tuple(arch["synth_hidden"]), tuple(arch["arm_hidden"]))
        networks = payload["networks"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a networks file: {error}") from None
    return {"architecture": key, "networks": networks, "payload": payload}


def load_networks_file(path: Path, model: CocoNet) -> None:
    """Start `model`'s networks from a networks file (`bench.pretrain_networks`).

    Raises:
        ValueError: the file is unreadable or holds another architecture.
    """
    content = read_networks_file(path)
    if not _fits(content, model):
        raise ValueError(f"{path} holds networks for another architecture: {content['architecture']}")
    load_network_state(model, content["networks"])


def _fits(content: dict, model: CocoNet) -> bool:
    """Whether a networks file's architecture is the model's."""
    arch = model.arch
    return content["architecture"] == (arch.n_levels, arch.synth_hidden, arch.arm_hidden)


@functools.cache
def _shipped() -> dict:
    return read_networks_file(PRETRAINED_PATH)


def start_from_pretrained(model: CocoNet) -> bool:
    """Load the shipped networks into `model` if they fit its architecture; whether they did."""
    content = _shipped()
    if not _fits(content, model):
        return False
    load_network_state(model, content["networks"])
    return True
