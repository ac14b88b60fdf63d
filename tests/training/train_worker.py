"""Run by test_training_faults.py: train the small open_unmix config on synthetic songs in WORKDIR to STEPS."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_training import config_for, synthetic_song  # noqa: E402

from stemdesk.training.train import Trainer  # noqa: E402

if __name__ == "__main__":
    workdir, steps = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("open_unmix", seed=3)
    config.max_steps, config.validate_every, config.minutes = steps, 5, 60
    Trainer(config, songs[:2], songs[2:], workdir).run()
    print("finished", flush=True)
