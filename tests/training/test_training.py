"""The trainer: every estimator's objective learns, checkpoints resume to the same result, exports load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import small_configs

from stemdesk.core.estimators import BUILTIN_ESTIMATORS, Estimator, build_estimator
from stemdesk.core.stft import STFT
from stemdesk.io.model_store import load_estimator
from stemdesk.training.data import Song
from stemdesk.training.train import (
    LOSS_BLOCK,
    TrainConfig,
    Trainer,
    export_model,
    loss_trend,
    objective_loss,
    regroup,
    source_map,
)

SOURCES = ("vocals", "drums", "bass", "other")


def synthetic_song(name: str, seed: int, seconds: float = 3.0, rate: int = 16000) -> Song:
    """Four distinguishable sources: a vibrato tone, clicks, a low sine, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    vocals = 0.3 * np.sin(2 * np.pi * (600 + 30 * np.sin(2 * np.pi * 5 * t)) * t)
    drums = np.zeros_like(t)
    drums[:: rate // 4] = 0.9
    drums = np.convolve(drums, np.exp(-np.arange(400) / 60), mode="same")
    bass = 0.4 * np.sin(2 * np.pi * (60 + 10 * seed) * t)
    other = 0.05 * rng.standard_normal(t.shape)
    stems = np.stack([vocals, drums, bass, other])[:, None, :].repeat(2, axis=1)
    return Song(name, np.round(stems * 32767).astype(np.int16), (True,) * 4, rate)


def config_for(kind: str, **extra) -> TrainConfig:
    small = dict(small_configs().get(kind, {}))
    sources = small.pop("sources", list(SOURCES))
    config = {"sources": sources, "stft": {"n_fft": 512, "hop": 128, "sample_rate": 16000}, **small}
    return TrainConfig(
        estimator=kind,
        config=config,
        excerpt_seconds=1.0,
        batch=2,
        lr=3e-3,
        validate_every=4,
        minutes=5,
        max_steps=4,
        **extra,
    )


def masked_waves(estimator, stft, stems):
    """The stems the separator would write for the mixture of ``stems``: the masks on it, through the iSTFT."""
    from stemdesk.core.masks import normalise_masks

    spec = stft(stems.sum(dim=1))
    masks = normalise_masks(estimator(spec.abs()), estimator.mask, estimator.residual)
    return stft.inverse(masks * spec.unsqueeze(1), stems.shape[-1]).detach()


def train_steps(estimator, stft, stems, steps=40, lr=3e-3):
    """``steps`` Adam steps on the estimator's own objective, on one batch, in training mode; the losses."""
    optimiser = torch.optim.Adam(estimator.parameters(), lr=lr)
    losses = []
    estimator.train()
    for _ in range(steps):
        loss = objective_loss(estimator, stft, stems)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


# the mask estimators (fine-tuning a waveform estimator such as HTDemucs is refused so far)
@pytest.mark.parametrize(
    "kind",
    # the parameter-free ones (mix, crossover) have nothing to fit
    sorted(k for k, cls in BUILTIN_ESTIMATORS.items() if issubclass(cls, Estimator) and k not in ("mix", "crossover")),
)
def test_every_objective_fits_a_fixed_batch(kind):
    """Forty steps on one batch must lower each estimator's own training loss."""
    torch.manual_seed(0)
    config = config_for(kind)
    estimator = build_estimator(kind, config.config)
    stft = STFT(estimator.stft_config)
    data = torch.from_numpy(synthetic_song("a", 0).audio().numpy()[None, :, :, :16000])
    stems = regroup(data, source_map(estimator.sources, SOURCES))
    losses = train_steps(estimator, stft, stems)
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.9 * losses[0], losses


def test_the_usdr_objective_is_the_scored_metric_of_the_masked_stems_and_training_on_it_raises_it():
    """The loss is minus the mean uSDR that `stemdesk.core.metrics.usdr` gives the stems the separator would write
    (the masked mixture through the iSTFT), a silent source left out; forty steps on it raise that uSDR."""
    from stemdesk.core.metrics import usdr

    torch.manual_seed(0)
    config = config_for("band_mlp")
    estimator = build_estimator("band_mlp", {**config.config, "objective": "usdr"})
    stft = STFT(estimator.stft_config)
    stems = torch.from_numpy(synthetic_song("a", 0).audio().numpy()[None, :, :, :16000])
    stems[:, 3] = 0  # no "other" in this example: not a target, not in the mean

    def scored() -> tuple[float, float]:
        waves = masked_waves(estimator, stft, stems)
        return objective_loss(estimator, stft, stems).item(), usdr(stems, waves)[0, :3].mean().item()

    loss, metric = scored()
    assert loss == pytest.approx(-metric, abs=1e-3)
    train_steps(estimator, stft, stems)
    after = scored()
    assert after[0] == pytest.approx(-after[1], abs=1e-3)
    assert after[1] > metric + 3, (metric, after)


def test_usdr_silent_scores_the_leak_into_a_silent_stem_and_training_on_it_lets_less_through():
    """usdr_silent: the heard sources' uSDR and, for a silent one, the mixture over what leaks into it (capped at 30
    dB), averaged over all four; from the same start, forty steps on it leave less in the silent stem than forty
    steps on usdr, which never sees it."""
    from stemdesk.core.metrics import usdr

    stems = torch.from_numpy(synthetic_song("a", 0).audio().numpy()[None, :, :, :16000])
    stems[:, 3] = 0  # no "other" in this example

    def trained(objective: str) -> tuple[float, float, float]:
        torch.manual_seed(0)
        config = config_for("band_mlp")
        estimator = build_estimator("band_mlp", {**config.config, "objective": objective})
        stft = STFT(estimator.stft_config)

        def leak_db() -> tuple[float, float]:  # the silent stem's level below the mixture, the heard stems' uSDR
            waves = masked_waves(estimator, stft, stems)
            mix, leak = stems.sum(dim=1).square().sum(), waves[0, 3].square().sum()
            expected = (usdr(stems, waves)[0, :3].sum() + 10 * torch.log10(mix / (leak + 1e-3 * mix))) / 4
            if objective == "usdr_silent":
                assert objective_loss(estimator, stft, stems).item() == pytest.approx(-expected.item(), abs=1e-3)
            return 10 * torch.log10(mix / leak).item(), usdr(stems, waves)[0, :3].mean().item()

        before = leak_db()
        train_steps(estimator, stft, stems)
        return before[0], *leak_db()

    start, silent_leak, silent_heard = trained("usdr_silent")
    _, plain_leak, plain_heard = trained("usdr")
    print(f"leak below the mix: start {start:.1f} dB, usdr {plain_leak:.1f}, usdr_silent {silent_leak:.1f}")
    print(f"heard sources' uSDR: usdr {plain_heard:.2f}, usdr_silent {silent_heard:.2f}")
    assert silent_leak > plain_leak + 3


def test_source_map_builds_accompaniment_from_the_rest():
    assert source_map(["vocals", "accompaniment"], SOURCES) == [[0], [1, 2, 3]]
    assert source_map(["drums", "vocals"], SOURCES) == [[1], [0]]
    with pytest.raises(ValueError, match="no stem for 'piano'"):
        source_map(["piano", "vocals"], SOURCES)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, ema):
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]

    def train(workdir, steps):
        config = config_for("band_mlp", ema=ema)
        config.max_steps = steps
        config.validate_every = LOSS_BLOCK
        trainer = Trainer(config, songs[:2], songs[2:], workdir)
        trainer.run()
        return trainer

    straight = train(tmp_path / "a", 2 * LOSS_BLOCK)
    train(tmp_path / "b", LOSS_BLOCK)
    resumed = train(tmp_path / "b", 2 * LOSS_BLOCK)  # picks up the checkpoint at step LOSS_BLOCK
    assert resumed.step == 2 * LOSS_BLOCK
    # the training loss's curve too: one point per LOSS_BLOCK steps, the first from the run that was stopped
    assert [point[0] for point in straight.loss_curve] == [LOSS_BLOCK, 2 * LOSS_BLOCK]
    assert resumed.loss_curve == straight.loss_curve and all(np.isfinite(p[1]) for p in resumed.loss_curve)
    for (name, a), (_, b) in zip(straight.estimator.state_dict().items(), resumed.estimator.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h["step"] for h in resumed.history] == [LOSS_BLOCK, 2 * LOSS_BLOCK]
    if ema:
        for name, value in straight.averaged.items():
            assert torch.equal(value, resumed.averaged[name]), name


def test_the_moving_average_follows_the_weights_and_is_what_validation_and_export_see(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    trainer = Trainer(config_for("open_unmix", ema=0.9), songs[:2], songs[2:], tmp_path / "run")
    trainable = {n: p for n, p in trainer.estimator.named_parameters() if p.requires_grad}
    expected = {n: p.detach().clone() for n, p in trainable.items()}
    for t in range(6):
        assert trainer.train_step(regroup(trainer.sampler.batch(2), trainer.mapping)) is not None
        decay = min(0.9, (1 + t) / (10 + t))
        for name, value in expected.items():
            value.mul_(decay).add_(trainable[name].detach(), alpha=1 - decay)
        trainer.step += 1
    own = {n: p.detach().clone() for n, p in trainable.items()}
    for name, value in expected.items():
        torch.testing.assert_close(trainer.averaged[name], value)
        assert not torch.equal(value, own[name]), name  # the average lags the weights
    with trainer.averaged_weights():
        assert all(torch.equal(p, trainer.averaged[n]) for n, p in trainable.items())
    assert all(torch.equal(p, own[n]) for n, p in trainable.items())

    # run() validates and exports the average, then trains on from the weights themselves.
    trainer.config.max_steps = 8
    trainer.config.validate_every = 8
    trainer.run(export=export_model(tmp_path / "models" / "avg", "avg", {"licenses": {"weights": "test"}}))
    exported, _ = load_estimator("avg")
    loaded = dict(exported.named_parameters())
    for name, value in trainer.averaged.items():
        assert torch.equal(loaded[name], value), name
        assert not torch.equal(loaded[name], dict(trainer.estimator.named_parameters())[name]), name


def test_export_writes_a_model_that_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("open_unmix")
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path / "run")
    trainer.run(
        export=export_model(
            tmp_path / "models" / "mine", "mine", {"training_data": "synthetic", "licenses": {"weights": "test"}}
        )
    )
    estimator, card = load_estimator("mine")
    assert card.raw["metrics"]["validation_usdr_median_db"].keys() == set(SOURCES)
    for (name, a), (_, b) in zip(trainer.estimator.state_dict().items(), estimator.state_dict().items()):
        if trainer.best == trainer.history[-1]["valid_mean"]:
            assert torch.equal(a, b), name


def test_low_rank_adapters_train_only_themselves_and_merge_into_a_plain_model(tmp_path, monkeypatch):
    """LoRA: the adapted model starts exactly at the base, only the adapters learn, and the exported model (adapters
    merged) is the plain estimator and computes what the adapted one computed."""
    from stemdesk.training.lora import LoRALinear, add_adapters, merged_copy

    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    base = build_estimator("open_unmix", config_for("open_unmix").config)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    spec = torch.randn(1, 2, base.stft_config.n_fft // 2 + 1, 12).abs()

    adapted = build_estimator("open_unmix", config_for("open_unmix").config)
    adapted.load_state_dict(state)
    adapted.eval(), base.eval()
    names = add_adapters(adapted, 4)
    assert set(names) == {"fc1", "fc2", "fc3"}
    with torch.no_grad():
        assert torch.allclose(adapted(spec), base(spec), atol=1e-6)  # B = 0: the base model exactly

    config = config_for("open_unmix", adapters=4)
    config.max_steps, config.validate_every, config.lr = 6, 3, 1e-2
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path / "run", init_state=state)
    trainable = {n for n, p in trainer.estimator.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".down", ".up")) for n in trainable)
    trainer.run(
        export=export_model(
            tmp_path / "models" / "lora", "lora", {"training_data": "synthetic", "licenses": {"weights": "test"}}
        )
    )
    for name, value in trainer.estimator.state_dict().items():  # frozen weights did not move
        if ".base." in name:
            assert torch.equal(value, state[name.replace(".base", "")]), name
    assert any(m.up.abs().sum() > 0 for m in trainer.estimator.modules() if isinstance(m, LoRALinear))
    merged = merged_copy(trainer.estimator).eval()
    trainer.estimator.eval()
    with torch.no_grad():
        assert torch.allclose(merged(spec), trainer.estimator(spec), atol=1e-5)
    exported, _ = load_estimator("lora")  # loads as a plain open_unmix
    assert set(exported.state_dict()) == set(state)


def test_fine_tuning_keeps_batch_norm_statistics_and_frozen_parts_compute_what_they_did(tmp_path):
    """From scratch, batch norm learns its statistics; fine-tuning keeps the loaded ones (a small data set's
    batches would replace them) and a wholly frozen stage is not touched at all."""
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    fresh = Trainer(config_for("cascade"), songs[:2], songs[2:], tmp_path / "a")
    before = {k: v.clone() for k, v in fresh.estimator.state_dict().items()}
    fresh.run()
    moved = [k for k in before if "running_mean" in k and not torch.equal(before[k], fresh.estimator.state_dict()[k])]
    assert moved, "training from scratch should update batch-norm statistics"

    config = config_for("cascade", freeze=("first.",))
    tuned = Trainer(config, songs[:2], songs[2:], tmp_path / "b", init_state=before)
    tuned.run()
    after = tuned.estimator.state_dict()
    for key, value in before.items():
        if "running_" in key or key.startswith("first."):
            assert torch.equal(value, after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("second.fc"))


def test_a_source_no_training_song_has_is_a_clear_error_not_a_sampling_crash():
    from stemdesk.core.errors import StemDeskError
    from stemdesk.training.data import Sampler

    songs = [synthetic_song(f"s{i}", i) for i in range(2)]
    songs = [Song(s.name, s.stems, (True, True, False, True), s.sample_rate) for s in songs]  # no usable bass
    with pytest.raises(StemDeskError, match="No training song has a usable bass stem"):
        Sampler(songs, 8000, names=SOURCES)


def test_a_fine_tune_can_export_its_start_and_replaces_it_only_with_something_better(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    base = build_estimator("open_unmix", config_for("open_unmix").config)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    facts = {"training_data": "synthetic", "licenses": {"weights": "test"}}
    for export_start in (False, True):
        config = config_for("open_unmix", beat_start=True)
        config.lr = 0.0  # it can never beat its start
        trainer = Trainer(config, songs[:2], songs[2:], tmp_path / f"run-{export_start}", init_state=state)
        folder = tmp_path / "models" / f"start-{export_start}"
        trainer.run(export=export_model(folder, f"start-{export_start}", facts), export_start=export_start)
        assert (folder / "card.json").is_file() == export_start
    exported, card = load_estimator("start-True")
    assert card.raw["metrics"]["step"] == 0
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in state.items())


def test_a_gain_counts_only_beyond_the_runs_own_noise():
    from stemdesk.training.finetune import RESOLUTION_DB, beyond_noise

    songs = {"a": {"vocals": 5.0}, "b": {"vocals": 3.0}, "c": {"vocals": 4.0}}
    start = {"valid_mean": 4.0, "songs": songs}

    def rounds(means, gains=(0.1, 0.1, 0.1)):
        return [
            {"valid_mean": m, "songs": {s: {"vocals": v["vocals"] + g} for (s, v), g in zip(songs.items(), gains)}}
            for m in means
        ]

    # a steady climb, every song better: a real gain
    gain, noise = beyond_noise(start, rounds([4.1, 4.2, 4.3, 4.4], (0.4, 0.35, 0.45)))
    assert gain == pytest.approx(0.4) and gain > noise
    # scores that wobble ±0.3 between rounds: a best round +0.3 over the start is within the noise
    gain, noise = beyond_noise(start, rounds([4.3, 3.8, 4.25, 3.85, 4.2], (0.3, 0.3, 0.3)))
    assert gain == pytest.approx(0.3) and noise > 0.3
    # a steady, tiny climb where one song gains and the others lose: the spread across songs is the noise
    gain, noise = beyond_noise(start, rounds([4.01, 4.02, 4.03, 4.04], (1.0, -0.5, -0.38)))
    assert gain == pytest.approx(0.04) and noise > 0.3
    # a gain below the 0.01 dB that scores are reported to is none
    gain, noise = beyond_noise(start, rounds([4.001, 4.002, 4.003], (0.003, 0.003, 0.003)))
    assert gain < noise == RESOLUTION_DB


def minimal_card(model_id: str, estimator: str, sources: list[str]) -> dict:
    """The facts every card has, for rendering tests."""
    return {
        "id": model_id,
        "estimator": estimator,
        "sources": sources,
        "sample_rate": 44100,
        "config": {"stft": {"n_fft": 4096, "hop": 1024}},
        "weights_sha256": "0" * 64,
    }


def test_a_model_card_renders_the_trained_stems_and_its_fine_tuning_advice():
    from stemdesk.training.model_card import render

    # A 2-stem variant carries its 4-stem weights' training table; the table keeps the stems that were trained.
    card = {
        **minimal_card("two", "cascade", ["vocals", "accompaniment"]),
        "training": {
            "fine_tuning": {
                "steps_run": 50,
                "minutes_run": 8.0,
                "decision": "kept the start",
                "validation_by_step": {"50": {"vocals": 6.0, "drums": 3.8, "bass": 2.8, "other": 1.9}},
            }
        },
        "fine_tune": {"lr": 5e-5, "freeze": ["second."], "why": "Measured."},
    }
    text = render(card)
    assert "| step | vocals | drums | bass | other |" in text and "| 50 | 6.00 | 3.80 | 2.80 | 1.90 |" in text
    assert "nan" not in text
    assert "`stemdesk train --from two` uses learning rate 5e-05 with `second.` frozen" in text


def test_a_model_card_says_what_a_continued_run_started_from_without_inventing_its_history():
    from stemdesk.training.model_card import render

    card = {
        **minimal_card("four", "cascade", ["vocals"]),
        "training": {
            "continued_from": {
                "weights_sha256": "86e431c6be32" + "f" * 52,
                "step": 0,
                "cpu_minutes": None,
                "validation_usdr_median_db": {"vocals": 5.66},
            }
        },
    }
    composed = render(card)  # a composed cascade: no training step, no minutes behind it
    assert "continued from the earlier weights (sha256 `86e431c6be32…`), which scored vocals 5.66" in composed
    assert "?" not in composed and "step 0" not in composed
    card["training"]["continued_from"].update(step=1050, cpu_minutes=92.4)
    assert "(sha256 `86e431c6be32…`, training step 1050 after 92 CPU-minutes)" in render(card)


def test_a_warmup_makes_the_first_steps_small_and_reaches_the_full_rate(tmp_path):
    """A fresh Adam moves every weight by about the learning rate on its first step, whatever the gradient: on
    trained weights that first step is what a warmup scales down (1/warmup of it), rising to the full rate."""
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]

    def first_step(warmup: int, steps: int = 1) -> tuple[float, Trainer]:
        config = config_for("band_mlp", warmup=warmup)
        config.max_steps, config.validate_every = steps, 100
        trainer = Trainer(config, songs[:2], songs[2:], tmp_path / f"w{warmup}-{steps}")
        before = {k: v.clone() for k, v in trainer.estimator.state_dict().items()}
        trainer.run()
        after = trainer.estimator.state_dict()
        return max(float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point()), trainer

    full, _ = first_step(0)
    small, _ = first_step(10)
    assert full > 0 and 0.05 < small / full < 0.15, (small, full)  # Adam's first step: about lr / 10
    _, trainer = first_step(4, steps=6)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(trainer.config.lr)


def test_the_loss_trend_says_whether_the_loss_still_fell_at_the_end():
    falling = [[5 * (i + 1), 1.0 / (i + 1)] for i in range(8)]
    before, last = (1 / 5 + 1 / 6) / 2, (1 / 7 + 1 / 8) / 2  # quarters of 2 points: steps 25-30 and 35-40
    assert loss_trend(falling)["last_quarter_change_percent"] == round(100 * (last - before) / before, 1) == -26.9
    flat = [[5 * (i + 1), 0.25] for i in range(12)]
    assert loss_trend(flat)["last_quarter_change_percent"] == 0.0
    assert loss_trend(flat[:7]) is None  # too few steps to say


def test_with_a_final_decay_the_trend_is_the_one_before_it_and_the_decay_is_measured():
    flat_then_lower = [[5 * (i + 1), 0.25] for i in range(12)] + [[65, 0.2], [70, 0.2]]
    trend = loss_trend(flat_then_lower, decay_step=60)
    assert trend["last_quarter_change_percent"] == 0.0 and trend["last_quarter_loss"] == 0.25  # the stable part
    assert trend["decay_from_step"] == 60 and trend["decay_loss"] == 0.2 and trend["decay_change_percent"] == -20.0
    assert loss_trend(flat_then_lower)["last_quarter_change_percent"] < 0  # read whole, the decay looks like falling
    from stemdesk.training.model_card import render

    budget = {"minutes": 36, "decay_minutes": 6, "threads": 1, "device": "cpu", "steps": 70, "loss_trend": trend}
    budget.update(wall_seconds=2200, cpu_seconds=2150)
    text = render({**minimal_card("s", "open_unmix", ["vocals", "bass"]), "training": {"budget": budget}})
    assert "+0.0 % against the quarter before it before the learning rate's final decay: it had nearly" in text
    assert (
        "From step 60 the learning rate fell linearly to 0 over the budget's last 6 minutes; the loss over those "
        in text
    )
    assert "averaged 0.2, -20.0 % against the quarter before them." in text


def test_the_learning_rate_decays_to_zero_over_the_budgets_last_minutes_and_resumes_there(tmp_path):
    """A real run with a 6-second budget whose last 3 seconds decay: the steps in the decay have a falling rate,
    the rate at the end is near 0, and the step where the decay began survives a checkpoint."""
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("band_mlp")
    config.minutes, config.decay_minutes, config.validate_every, config.max_steps = 0.1, 0.05, 10**9, 10**9
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path)
    rates = []
    step = trainer.train_step

    def recorded(stems):
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        return step(stems)

    trainer.train_step = recorded
    trainer.run()
    assert trainer.decay_step is not None and 0 < trainer.decay_step < trainer.step
    stable, decayed = rates[: trainer.decay_step], rates[trainer.decay_step :]
    assert all(rate == config.lr for rate in stable)
    assert all(later <= earlier for earlier, later in zip(decayed, decayed[1:])) and decayed[0] <= config.lr
    assert decayed[-1] < 0.3 * config.lr  # the last steps: the budget all but spent
    again = Trainer(config, songs[:2], songs[2:], tmp_path)
    assert again.resume() and again.decay_step == trainer.decay_step


def test_a_model_card_shows_its_teacher_gap_and_whether_its_loss_had_flattened():
    from stemdesk.training.model_card import render, teacher_gap_entry

    def row(system, medians, per_song):
        return {"system": system, "usdr": medians, "usdr_per_song": per_song}

    student = row("student", {"vocals": 5.0, "bass": 3.0}, {"a": {"vocals": 5.0, "bass": 2.0}, "b": {"vocals": 7.0}})
    teacher = row("teacher", {"vocals": 6.0, "bass": 9.0}, {"a": {"vocals": 4.0, "bass": 9.0}, "b": {"vocals": 8.0}})
    gap = teacher_gap_entry(student, teacher)
    assert gap["stems"]["vocals"] == {"student": 5.0, "teacher": 6.0, "gap": -1.0, "student_higher": 1, "songs": 2}
    assert gap["stems"]["bass"]["songs"] == 1  # only where both were scored
    card = {
        **minimal_card("s", "open_unmix", ["vocals", "bass"]),
        "metrics": {"teacher_gap": gap},
        "training": {
            "budget": {
                "minutes": 10,
                "threads": 1,
                "device": "cpu",
                "steps": 120,
                "wall_seconds": 700,
                "cpu_seconds": 690,
                "loss_trend": loss_trend([[5 * (i + 1), 1.0 / (i + 1)] for i in range(8)]),
            }
        },
    }
    text = render(card)
    assert "| vocals | 5.00 | 6.00 | -1.00 | 1/2 |" in text and "| bass | 3.00 | 9.00 | -6.00 | 0/1 |" in text
    assert "-26.9 % against the quarter before it: it was still falling when the budget ran out." in text


def test_a_fresh_second_stage_behind_a_trained_first_is_normalised_for_what_it_hears(tmp_path):
    """A cascade's second stage trained from scratch behind a trained first stage hears the rest, not the mixture:
    its input normalisation comes from the rest, so each bin is centred where the rest is and not the mixture."""
    from stemdesk.core.estimators.cascade import Cascade

    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("cascade")
    config.config = {**config.config, "second_input": "rest"}
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path / "w")
    cascade = trainer.estimator
    assert isinstance(cascade, Cascade)
    state = trainer.sampler.state()
    mix = trainer.mixture_magnitudes(4)
    trainer.sampler.set_state(state)
    before = {k: v.clone() for k, v in cascade.first.state_dict().items()}
    cascade.eval()
    with torch.no_grad():
        heard = cascade.scaled_input()[1](mix)
    cascade.train()
    assert not torch.allclose(heard, mix)  # the rest is quieter than the mixture below the first's bins
    trainer.init_input_scaling(batches=1)
    after = cascade.first.state_dict()  # its batch norm statistics included: hearing through it changed nothing
    assert all(torch.equal(before[k], after[k]) for k in before) and cascade.first.training
    second = cascade.second
    bins = second.max_bin
    expected = torch.log(heard[:, :, :bins] + 1e-4).permute(0, 3, 1, 2).reshape(-1, second.input_mean.numel())
    assert torch.allclose(second.input_mean, expected.mean(0), atol=1e-5)
    from_mix = torch.log(mix[:, :, :bins] + 1e-4).permute(0, 3, 1, 2).reshape(-1, second.input_mean.numel())
    assert not torch.allclose(second.input_mean, from_mix.mean(0), atol=1e-2)


@pytest.mark.parametrize("patience", [0, 2])
def test_early_stop_ends_a_run_after_that_many_validations_without_a_new_best(tmp_path, patience):
    """A real run whose validation scores are scripted: the second round is the best, then they only fall. With a
    patience of 2 the run ends at the fourth round; with 0 it trains to its last step."""
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("band_mlp", early_stop=patience)
    config.max_steps, config.validate_every = 12, 2
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path)
    scores = iter([1.0, 3.0, 2.0, 1.5, 1.0, 0.5])
    trainer.validate = lambda: {"median": {"vocals": next(scores)}, "songs": {}}
    result = trainer.run()
    assert [h["step"] for h in result["history"]] == ([2, 4, 6, 8] if patience else [2, 4, 6, 8, 10, 12])
    assert result["best"] == 3.0


def test_a_checkpoint_is_exported_whatever_it_scores_and_only_when_there_is_one(tmp_path):
    """A run exports only what beats its start; `export_checkpoint` exports the latest checkpoint although it does
    not (a stopping point fixed in advance), with the weights the run ended with."""
    from stemdesk.core.errors import StemDeskError

    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = config_for("band_mlp", beat_start=True)
    config.max_steps, config.validate_every = 4, 2
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path / "run")
    scores = iter([5.0, 1.0, 1.0, 1.0])  # the start, then worse
    trainer.validate = lambda: {"median": {"vocals": next(scores)}, "songs": {}}
    exported: list = []
    trainer.run(export=lambda estimator, entry: exported.append(entry["step"]))
    assert exported == []  # nothing beat the start
    again = Trainer(config, songs[:2], songs[2:], tmp_path / "run")
    again.validate = lambda: {"median": {"vocals": 1.0}, "songs": {}}
    entry = again.export_checkpoint(lambda estimator, e: exported.append((e["step"], estimator.state_dict())))
    assert entry["step"] == 4 and exported[0][0] == 4
    ended = trainer.estimator.state_dict()
    assert all(torch.equal(value, ended[name]) for name, value in exported[0][1].items())
    with pytest.raises(StemDeskError, match="no checkpoint"):
        Trainer(config, songs[:2], songs[2:], tmp_path / "empty").export_checkpoint(lambda *_: None)
