"""Distributed training with torchrun on two CPU processes (gloo): synchronised gradients, the same curve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(processes: int, mode: str, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(WORKER),
        mode,
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_gradients_are_synchronised_across_processes(tmp_path):
    out = tmp_path / "grads.json"
    torchrun(2, "grads", out)
    result = json.loads(out.read_text())
    assert result["world"] == 2
    local = result["local_losses"]
    assert abs(local[0] - local[1]) > 1e-4  # each process saw different examples…
    assert result["grad_norm"] > 0
    assert result["grad_max_difference"] == 0.0  # …yet all hold the same averaged gradient
    assert result["weight_max_difference"] == 0.0  # and the same weights after the step
    assert abs(result["mean_loss"] - sum(local) / 2) < 1e-6


@pytest.mark.slow
def test_two_processes_follow_the_single_process_validation_curve(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    torchrun(1, "curve", one)
    torchrun(2, "curve", two)
    curve1, curve2 = json.loads(one.read_text()), json.loads(two.read_text())
    assert len(curve1) == len(curve2) == 4
    assert curve1[-1] > curve1[0] + 2 and curve2[-1] > curve2[0] + 2  # both learn
    assert max(abs(a - b) for a, b in zip(curve1, curve2)) < 1.0  # along the same curve, within noise
