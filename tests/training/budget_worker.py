"""Run by test_training_faults.py: a small recipe trained for its whole budget of MINUTES in WORKDIR, as
lab/benchmarks/reproduction.py trains each recipe (resuming a run of the same setup, or of a smaller budget); prints what the run did as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import small_configs  # noqa: E402
from test_training import synthetic_song  # noqa: E402

from stemdesk.training.scratch import ScratchRequest, longer_budget, plan, prepare_run, train_recipe  # noqa: E402


def run(workdir: Path, minutes: float) -> dict:
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    small = {k: v for k, v in small_configs()["roma_cnn"].items() if k != "sources"}
    made = plan(ScratchRequest(data=[], name="budget", recipe="roma-dnn", minutes=minutes, settings=small, batch=2))
    made.config.validate_every = 10**9
    made.config.checkpoint_minutes = 0.02
    setup = {"train_config": {"recipe": "roma-dnn", "minutes": minutes}}
    earlier = prepare_run(workdir, setup, continues=longer_budget(setup))
    trainer, _ = train_recipe(made, songs[:2], songs[2:], workdir, export=None, whole_budget=True)
    return {"resumed_from": earlier["step"] if earlier else None, "step": trainer.step, "seconds": trainer.seconds}


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(run(Path(sys.argv[1]), float(sys.argv[2]))), flush=True)
