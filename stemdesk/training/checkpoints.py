"""A training run's work folder: the latest checkpoint and the log of validation rounds.

A checkpoint holds the model, the optimiser, the weight average, the random states and the loop's counters. It is
written as safetensors plus JSON (no pickle) through temporary files and renames, so a kill at any moment leaves
the last good one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from stemdesk.io.atomic import atomic_path

STEM = "checkpoint"


@dataclass
class Checkpoint:
    """What a checkpoint restores: state dicts by part, the random states, and the loop's ``meta`` (JSON)."""

    model: dict[str, Tensor]
    optimizer: dict
    averaged: dict[str, Tensor]  # empty when the run kept no average
    rng: dict[str, Tensor]  # "torch", and "sampler.<rank>" per process
    meta: dict


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"opt.{index}.{name}"] = value if isinstance(value, Tensor) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _part(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


class Checkpoints:
    """``checkpoint.safetensors`` + ``checkpoint.json`` and ``log.jsonl`` in ``workdir``."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.weights = self.workdir / f"{STEM}.safetensors"
        self.info = self.workdir / f"{STEM}.json"
        self.log_file = self.workdir / "log.jsonl"

    def save(self, checkpoint: Checkpoint) -> None:
        tensors = {f"model.{k}": v for k, v in checkpoint.model.items()}
        optimizer, optimizer_meta = _flatten_optimizer(checkpoint.optimizer)
        tensors.update(optimizer)
        tensors.update({f"ema.{k}": v for k, v in checkpoint.averaged.items()})
        tensors.update({f"rng.{k}": v for k, v in checkpoint.rng.items()})
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        # The JSON names the step; both are renamed only when both are complete, the weights first.
        with atomic_path(self.info) as info_part, atomic_path(self.weights) as weights_part:
            save_file(tensors, str(weights_part))
            info_part.write_text(json.dumps({**checkpoint.meta, "optimizer": optimizer_meta}))

    def load(self) -> Checkpoint | None:
        """The latest checkpoint, or None when there is none yet."""
        if not (self.weights.is_file() and self.info.is_file()):
            return None
        tensors = load_file(str(self.weights))
        meta = json.loads(self.info.read_text())
        return Checkpoint(
            model=_part(tensors, "model."),
            optimizer=_unflatten_optimizer(tensors, meta["optimizer"]),
            averaged=_part(tensors, "ema."),
            rng=_part(tensors, "rng."),
            meta=meta,
        )

    def meta(self) -> dict | None:
        """The latest checkpoint's ``meta`` (step, config, ...) without loading its tensors; None when there is
        none yet."""
        if not (self.weights.is_file() and self.info.is_file()):
            return None
        return json.loads(self.info.read_text())

    def append_log(self, entry: dict) -> None:
        with open(self.log_file, "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def history(self, step: int) -> list[dict]:
        """The logged rounds up to ``step`` (the checkpoint's); later ones, logged after it by a run that was
        killed before its next checkpoint, are dropped from the log too, so no step is logged twice."""
        if not self.log_file.is_file():
            return []
        entries = [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]
        entries = [e for e in entries if e["step"] <= step]
        self.log_file.write_text("".join(json.dumps(e) + "\n" for e in entries))
        return entries
