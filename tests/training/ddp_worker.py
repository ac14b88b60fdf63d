"""Run under torchrun by test_distributed.py: ``torchrun --nproc_per_node N tests/ddp_worker.py MODE OUT``.

MODE "grads": one training step; every process reports its local loss and a checksum of its gradients.
MODE "curve": a short training run; rank 0 writes the validation history.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_training import config_for, synthetic_song  # noqa: E402

from stemdesk.training.train import Trainer, regroup  # noqa: E402


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    songs = [synthetic_song(f"s{i}", i) for i in range(4)]
    config = config_for("open_unmix", seed=7)
    config.batch = 4
    if mode == "grads":
        trainer = Trainer(config, songs[:3], songs[3:], out.parent / "grads-run")
        stems = regroup(trainer.sampler.batch(config.batch // trainer.world), trainer.mapping)
        local = torch.tensor([float(objective_local(trainer, stems))])  # before the step: the same weights
        loss = trainer.train_step(stems)
        # train_step has stepped the optimiser; the gradients it used are still in .grad.
        grads = torch.cat([p.grad.flatten() for p in trainer.estimator.parameters() if p.grad is not None])
        gathered_grads = [torch.empty_like(grads) for _ in range(trainer.world)]
        dist.all_gather(gathered_grads, grads)
        gathered_local = [torch.empty_like(local) for _ in range(trainer.world)]
        dist.all_gather(gathered_local, local)
        weights = torch.cat([p.detach().flatten() for p in trainer.estimator.parameters()])
        gathered_weights = [torch.empty_like(weights) for _ in range(trainer.world)]
        dist.all_gather(gathered_weights, weights)
        if trainer.rank == 0:
            out.write_text(
                json.dumps(
                    {
                        "world": trainer.world,
                        "mean_loss": loss,
                        "grad_max_difference": max(float((g - gathered_grads[0]).abs().max()) for g in gathered_grads),
                        "grad_norm": float(grads.norm()),
                        "weight_max_difference": max(
                            float((w - gathered_weights[0]).abs().max()) for w in gathered_weights
                        ),
                        "local_losses": [float(x) for x in gathered_local],
                    }
                )
            )
    else:
        config.max_steps = 60
        config.validate_every = 15
        config.minutes = 10
        trainer = Trainer(config, songs[:3], songs[3:], out.parent / f"curve-run-{trainer_world()}")
        trainer.run()
        if trainer.rank == 0:
            out.write_text(json.dumps([h["valid_mean"] for h in trainer.history]))
    if dist.is_initialized():
        dist.destroy_process_group()
    # torch 2.13's gloo can abort in its static destructors at interpreter exit ("terminate called without an
    # active exception"), after all the work above is done: seen here in about 1 run in 4 with the CPU loaded.
    # Leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def objective_local(trainer, stems) -> float:
    from stemdesk.training.train import objective_loss

    with torch.no_grad():
        return objective_loss(trainer.estimator, trainer.stft, stems).item()


def trainer_world() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


if __name__ == "__main__":
    main()
