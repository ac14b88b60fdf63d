"""Training survives kill -9 and divergence: it resumes from the last checkpoint and no file is corrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training import config_for, synthetic_song

from stemdesk.training.scratch import longer_budget, prepare_run
from stemdesk.training.train import Trainer

WORKER = Path(__file__).with_name("train_worker.py")
BUDGET_WORKER = Path(__file__).with_name("budget_worker.py")


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), "1000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    checkpoint = tmp_path / "checkpoint.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        checkpoint.is_file() and json.loads(checkpoint.read_text())["step"] >= 10
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    step_at_kill = json.loads(checkpoint.read_text())["step"]
    assert step_at_kill >= 10
    # Nothing half-written survives: the checkpoint pair loads, temporaries are the only debris allowed.
    load_file(str(tmp_path / "checkpoint.safetensors"))
    target = step_at_kill + 10
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path), str(target)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [entry["step"] for entry in log]
    assert steps == list(range(5, target + 1, 5))  # resumed where it stopped, no step logged twice
    assert json.loads(checkpoint.read_text())["step"] == target


@pytest.mark.slow
def test_a_recipe_killed_mid_run_resumes_with_what_is_left_of_its_budget(tmp_path):
    """lab/benchmarks/reproduction.py's way to train a recipe: killed mid-run, the same run carries on from its
    checkpoint for the rest of its budget (not the whole budget again), and a finished run trains no more."""
    from budget_worker import run

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    budget = 15.0  # seconds
    command = [sys.executable, str(BUDGET_WORKER), str(tmp_path), str(budget / 60)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        checkpoint.is_file() and json.loads(checkpoint.read_text())["seconds"] >= 5
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    at_kill = json.loads(checkpoint.read_text())
    assert at_kill["seconds"] >= 5 and at_kill["step"] > 0
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(done.stdout)
    assert resumed["resumed_from"] == at_kill["step"] and resumed["step"] > at_kill["step"]
    # The whole run trained for its budget: the kill's seconds count (started over, it would take 5 s more).
    assert budget - 0.5 <= resumed["seconds"] <= budget + 3, (at_kill, resumed)
    again = run(tmp_path, budget / 60)
    assert again["resumed_from"] == again["step"] == resumed["step"]  # finished: not a step more
    # A larger budget continues the finished run up to it (a longer round carries on from a shorter one).
    longer = run(tmp_path, 2 * budget / 60)
    assert longer["resumed_from"] == resumed["step"] and longer["step"] > resumed["step"]
    assert 2 * budget - 0.5 <= longer["seconds"] <= 2 * budget + 3, (resumed, longer)
    assert (tmp_path / "setup.json").read_text().count(str(2 * budget / 60)) == 1
    # A smaller budget is another run: its checkpoint is not resumed (nor kept).
    setup = {"train_config": {"recipe": "roma-dnn", "minutes": budget / 60}}
    assert prepare_run(tmp_path, setup, continues=longer_budget(setup)) is None
    assert not checkpoint.exists()


def fake_run(folder, setup, seconds=600.0):
    """A run folder holding ``setup`` and a checkpoint of step 7, ``seconds`` into its budget (the files
    prepare_run looks at)."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint.safetensors").write_bytes(b"weights")
    (folder / "checkpoints" / "checkpoint.json").write_text(json.dumps({"step": 7, "seconds": seconds}))
    (folder / "setup.json").write_text(json.dumps(setup))
    return folder


def setup_of(minutes, decay=None, lr=0.001, teacher=None):
    config = {"lr": lr, "minutes": minutes, **({"decay_minutes": decay} if decay is not None else {})}
    return {"train_config": config, "teacher": teacher}


@pytest.mark.parametrize(
    ("before", "seconds", "now", "resumed"),
    [
        (setup_of(10), 600, setup_of(10), True),  # the same run
        (setup_of(10), 600, setup_of(30), True),  # a larger budget: continued
        (setup_of(10), 600, setup_of(36, 6), True),  # ... with a final decay, which starts at 30 minutes
        (setup_of(30), 1801, setup_of(36, 6), True),  # a constant-rate run just past the decay's start (its last step)
        (setup_of(30), 1900, setup_of(36, 6), False),  # well past it: it trained at the full rate too long
        (setup_of(36, 6), 1500, setup_of(60, 6), True),  # checkpointed before its decay began
        (setup_of(36, 6), 2160, setup_of(60, 6), False),  # its rate had decayed: not the longer run's past
        (setup_of(10), 600, setup_of(5), False),  # a smaller budget: started over
        (setup_of(10), 600, setup_of(30, lr=0.002), False),  # another setting too
        (setup_of(10), 600, setup_of(30, teacher={"model": "x"}), False),
        (setup_of(10), 600, {"train_config": {"lr": 0.001}, "teacher": None}, False),  # no budget to compare
    ],
)
def test_a_run_resumes_only_for_its_own_setup_or_a_longer_budget(tmp_path, before, seconds, now, resumed):
    folder = fake_run(tmp_path / "run", before, seconds)
    meta = prepare_run(folder, now, continues=longer_budget(now))
    assert (meta == {"step": 7, "seconds": seconds}) is resumed
    assert (folder / "checkpoints" / "checkpoint.json").exists() is resumed
    assert json.loads((folder / "setup.json").read_text()) == now  # the folder now holds this run
    # Without a rule, only the very same setup is resumed.
    other = fake_run(tmp_path / "other", before, seconds)
    assert (prepare_run(other, now) is not None) is (now == before)


def test_a_killed_lin_run_counts_its_pre_training_toward_the_budget(tmp_path):
    """Pre-training seconds are part of what a run has spent: 25 min of training after 8 of pre-training is past
    a 36-minute budget's decay at 30."""
    folder = fake_run(tmp_path / "run", setup_of(30), 25 * 60)
    (folder / "pretraining.json").write_text(json.dumps({"seconds": 8 * 60}))
    assert prepare_run(folder, setup_of(36, 6), continues=longer_budget(setup_of(36, 6))) is None
    assert not (folder / "pretraining.json").exists()


def test_a_nan_loss_rolls_back_to_the_last_checkpoint(tmp_path, monkeypatch):
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("band_mlp")
    config.max_steps, config.validate_every = 12, 4
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path)
    real_step = trainer.train_step
    poisoned = {"done": False}

    def step(stems):
        if trainer.step == 6 and not poisoned["done"]:
            poisoned["done"] = True
            with torch.no_grad():  # corrupt the weights as a diverging step would
                for parameter in trainer.estimator.parameters():
                    parameter.fill_(float("nan"))
        return real_step(stems)

    monkeypatch.setattr(trainer, "train_step", step)
    lr = trainer.optimizer.param_groups[0]["lr"]
    trainer.run()
    assert poisoned["done"] and trainer.step == 12
    assert all(torch.isfinite(p).all() for p in trainer.estimator.parameters())
    assert trainer.optimizer.param_groups[0]["lr"] == lr / 2
