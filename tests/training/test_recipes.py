"""The seed methods' recipes: each trains from scratch through `stemdesk train`, is installed as a research model
that `stemdesk separate` runs and whose stems null bit-exact, and its card says what separation applies, which is
what separation applies."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import parts, run, small_configs, song, write_song
from safetensors.torch import load_file
from test_training import synthetic_song

from stemdesk.core.estimators import build_estimator
from stemdesk.core.postprocess import PostProcessing
from stemdesk.core.separator import Separator
from stemdesk.io.model_store import find_model, load_estimator, save_model, user_models_dir, weights_bytes
from stemdesk.training.pretrain import FrameAutoencoder, pretrain_autoencoder
from stemdesk.training.recipes import PAPER_RECIPES, describe
from stemdesk.training.scratch import SIZE_LIMIT
from stemdesk.training.threshold import CANDIDATES
from stemdesk.training.train import TrainConfig, Trainer, export_model, window_bce

SMALL_RECIPES = sorted(PAPER_RECIPES)


def tiny(recipe: str) -> list[str]:
    """--set flags that make a recipe's network tiny (the tests' small configs of its estimator)."""
    small = {k: v for k, v in small_configs()[PAPER_RECIPES[recipe].estimator].items() if k != "sources"}
    flags = []
    for key, value in small.items():
        flags += ["--set", f"{key}={json.dumps(value)}"]
    return flags


@pytest.fixture(scope="module")
def songs_folder(tmp_path_factory):
    """Three 2-second songs; one says it is a MUSDB18 excerpt (research only), one is CC0."""
    root = tmp_path_factory.mktemp("data") / "songs"
    for i in range(3):
        write_song(root / f"song{i}", parts(i, seconds=2.0))
    (root / "song0" / "meta.json").write_text(
        json.dumps({"source": "MUSDB18 7-second excerpt", "license": "Restricted"})
    )
    (root / "song1" / "meta.json").write_text(json.dumps({"source": "Everything is Free", "license": "CC0-1.0"}))
    return root


def test_every_recipe_fits_in_10_mb_as_stored_and_says_what_it_sets():
    for name, recipe in PAPER_RECIPES.items():
        estimator = build_estimator(recipe.estimator, recipe.config)
        data, storage = weights_bytes(estimator, half=True)
        assert len(data) <= SIZE_LIMIT, (name, len(data))
        words = describe(recipe)
        assert {"estimator", "input", "objective", "separation", "augmentation"} <= set(words), name
    lin = describe(PAPER_RECIPES["lin-cnn"])
    assert "zero-padded to a 4096-point FFT" in lin["input"] and "2049 bins" in lin["input"]
    assert "9 frames" in lin["input"] and "0.02 / 0.98" in lin["objective"]
    assert "exceeds θ, chosen on the training songs" in lin["separation"]
    assert "autoencoder" in lin["pre-training"]
    assert "11 frames" in describe(PAPER_RECIPES["roma-cnn1"])["input"]
    assert "renormalised" in describe(PAPER_RECIPES["roma-cnn1"])["separation"]
    assert "argmax" in describe(PAPER_RECIPES["roma-cnn2"])["separation"]
    assert "5 frames" in describe(PAPER_RECIPES["roma-dnn"])["input"]
    karaoke = describe(PAPER_RECIPES["simpson-dk"])
    assert "averaged" in karaoke["separation"] and "confidence α, chosen on the training songs" in karaoke["separation"]
    mine = replace(PAPER_RECIPES["simpson-dk"], threshold=None)  # a user's --set alpha=…: the value stands
    assert "confidence α = 0.5" in describe(mine)["separation"]
    assert "each sliding excerpt" in karaoke["objective"]
    assert "dual" in describe(PAPER_RECIPES["george-bilstm-dual"])["objective"]
    assert "pedalboard" in describe(PAPER_RECIPES["pretet-unet-augmented"])["augmentation"]
    assert describe(PAPER_RECIPES["pretet-unet"])["augmentation"] == "none"
    post = describe(PAPER_RECIPES["pretet-unet-post"])["separation"]
    assert "energy gate" in post and "binarised" in post and "Wiener" in post


@pytest.mark.parametrize("recipe", SMALL_RECIPES)
def test_each_recipe_trains_from_scratch_into_a_research_model_whose_stems_null(recipe, songs_folder, tmp_path):
    name = f"my-{recipe}"
    code, out, err = run(
        "train",
        "--recipe",
        recipe,
        "--data",
        songs_folder,
        "--out",
        name,
        "--valid",
        "song2",
        "--steps",
        "2",
        "--pretrain-steps",
        "2",
        "--batch",
        "2",
        "--threads",
        "1",
        "--pitch-time",
        "0.5" if recipe == "pretet-unet-augmented" else "0",
        *tiny(recipe),
    )
    assert code == 0, err
    assert f"{name}: " in out and f"recipe {recipe}" in out and "trained from scratch for 2 steps" in out
    card = find_model(name)
    assert card.folder.parent == user_models_dir()
    raw = card.raw
    assert raw["purpose"] == "research" and raw["paper"]["recipe"] == recipe
    assert raw["paper"]["reference"] == PAPER_RECIPES[recipe].paper
    assert raw["training"]["from_scratch"] and raw["training"]["budget"]["steps"] == 2
    assert raw["training"]["budget"]["cpu_seconds"] >= 0 and raw["training"]["budget"]["threads"] == 1
    assert "research and education use only" in raw["training_data"]["research_only"]
    assert "MUSDB18" in raw["licenses"]["training_data"] and "CC0-1.0" in raw["licenses"]["training_data"]
    assert PostProcessing.from_card(raw["postprocessing"]) == PAPER_RECIPES[recipe].postprocessing
    assert raw["weights_bytes"] == (card.folder / "weights.safetensors").stat().st_size
    readme = (card.folder / "README.md").read_text()
    assert "## Method" in readme and "## CPU budget" in readme and recipe in readme
    if PAPER_RECIPES[recipe].pretrain:
        assert raw["training"]["budget"]["pretraining"]["steps"] == 2 and "pre-training steps" in out
    key = PAPER_RECIPES[recipe].threshold
    if key is not None:  # chosen on the training songs after training, kept in the config the model is built from
        chosen = raw["paper"]["threshold"]
        assert chosen["key"] == key and chosen["chosen"] in CANDIDATES and raw["config"][key] == chosen["chosen"]
        assert f"- threshold: {key} = {chosen['chosen']:g}, chosen after training" in readme

    mixture = tmp_path / "take.wav"
    sf.write(str(mixture), song(2.0, 44100, 2, seed=5), 44100, subtype="PCM_16")
    code, out, err = run("separate", mixture, "-o", tmp_path / "out", "--model", name, "--bit-depth", "16")
    assert code == 0, err
    stems = [tmp_path / "out" / "take" / f"{source}.wav" for source in card.sources]
    total = sum(sf.read(str(path), dtype="int16")[0].astype(np.int64) for path in stems)
    assert np.array_equal(total, sf.read(str(mixture), dtype="int16")[0].astype(np.int64))  # bit-exact
    certificate = json.loads((tmp_path / "out" / "take" / "stemdesk-certificate.json").read_text())
    assert certificate["settings"]["wiener_iterations"] == PAPER_RECIPES[recipe].postprocessing.wiener

    code, listing, _ = run("models", "--all")
    research = listing.split("Research (")[1]
    assert f"{name}: {card.estimator}" in research and f"recipe {recipe}" in research


def test_unknown_and_refused_recipes_are_clear_errors(songs_folder):
    base = ["train", "--data", songs_folder, "--out", "x"]
    code, _, err = run(*base, "--recipe", "lin-cnn-9000")
    assert code == 1 and "no recipe named 'lin-cnn-9000'" in err and "simpson-dk" in err
    code, _, err = run(*base, "--estimator", "unet", "--recipe", "lin-cnn")
    assert code == 1 and "trains lin_cnn, not unet" in err and "pretet-unet" in err
    code, _, err = run(*base, "--estimator", "htdemucs")
    assert code == 1 and "predicts waveforms" in err
    code, _, err = run(*base, "--estimator", "nonesuch")
    assert code == 1 and "no estimator named 'nonesuch'" in err
    code, _, err = run(*base, "--recipe", "lin-cnn", "--from", "tiny-4stem")
    assert code == 1 and "takes no --from" in err
    code, _, err = run(*base, "--set", "hidden=8")
    assert code == 1 and "fine-tuning (--from) takes no --set" in err
    code, _, err = run(*base, "--recipe", "lin-cnn", "--set", "context_frames=banana")
    assert code == 1 and "lin_cnn cannot be built from the recipe lin-cnn with --set context_frames" in err
    code, _, err = run("train", "--recipe", "lin-cnn", "--out", "x")
    assert code == 1 and "needs --data" in err
    code, _, err = run(*base, "--recipe", "roma-cnn1", "--vocal-gate", "0.5,0.05", "--set", 'sources=["drums","bass"]')
    assert code == 1 and "vocal gate needs a model with a vocals stem" in err
    code, out, _ = run("train", "--recipes")
    assert code == 0 and all(name in out for name in PAPER_RECIPES)
    code, out, _ = run("train", "--recipes", "--recipe", "lin-cnn")
    assert code == 0 and "0.02 / 0.98" in out and "autoencoder" in out


@pytest.mark.parametrize("kind", ["lin_cnn", "deep_karaoke"])
def test_the_estimators_threshold_in_the_card_is_what_separation_applies(kind, tmp_path):
    """θ (Lin) and α (Deep Karaoke) live in the card's config: a mask below the threshold is zero before the null
    rule, so with a threshold above every probability the written vocals are silent and the accompaniment is the
    mixture; with the card's 0.5 every vocal mask is 0 or 1, where the probability is above 0.5."""
    setting = "theta" if kind == "lin_cnn" else "alpha"
    config = {
        "sources": ["vocals", "accompaniment"],
        "stft": {"n_fft": 1024, "hop": 256},
        **{k: v for k, v in small_configs()[kind].items() if k != "sources"},
    }
    torch.manual_seed(0)
    estimator = build_estimator(kind, {**config, setting: 0.5})
    for threshold in (0.5, 1.0):
        folder = user_models_dir() / f"{kind}-{threshold}"
        save_model(folder, folder.name, build_estimator(kind, {**config, setting: threshold}), {})
        (folder / "weights.safetensors").write_bytes(weights_bytes(estimator)[0])
        card = json.loads((folder / "card.json").read_text())
        from stemdesk.io.model_store import sha256_file

        card["weights_sha256"] = sha256_file(folder / "weights.safetensors")
        (folder / "card.json").write_text(json.dumps(card))
    mixture = tmp_path / "mix.wav"
    sf.write(str(mixture), song(2.0, 44100, 2, seed=3), 44100, subtype="PCM_16")
    code, _, err = run("separate", mixture, "-o", tmp_path / "high", "--model", f"{kind}-1.0", "--bit-depth", "16")
    assert code == 0, err
    vocals = sf.read(str(tmp_path / "high" / "mix" / "vocals.wav"), dtype="int16")[0]
    accompaniment = sf.read(str(tmp_path / "high" / "mix" / "accompaniment.wav"), dtype="int16")[0]
    assert not vocals.any()
    assert np.array_equal(accompaniment, sf.read(str(mixture), dtype="int16")[0])

    loaded, card = load_estimator(f"{kind}-0.5")
    assert card.config[setting] == 0.5
    audio = torch.from_numpy(song(2.0, 44100, 2, seed=3).T.copy())
    masks = Separator(loaded).__call__(audio, 44100, keep_masks=True).masks
    assert set(masks.unique().tolist()) <= {0.0, 1.0} and 0 < float(masks[:, 0].mean()) < 1
    soft = build_estimator(kind, {**config, setting: None})
    soft.load_state_dict(loaded.state_dict())
    probabilities = Separator(soft)(audio, 44100, keep_masks=True).masks[:, 0]
    assert torch.equal(masks[:, 0], (probabilities > 0.5).to(masks.dtype))


def test_the_cards_postprocessing_is_what_separation_applies_and_can_be_left_out(tmp_path):
    torch.manual_seed(0)
    config = {"sources": ["vocals", "accompaniment"], "stft": {"n_fft": 1024, "hop": 256}, "bands": 8, "hidden": 8}
    estimator = build_estimator("band_mlp", config)
    post = {"wiener": 1, "vocal_gate": [0.3, 0.2], "binarise": 12.0}
    save_model(user_models_dir() / "gated", "gated", estimator, {"postprocessing": post})
    save_model(user_models_dir() / "plain", "plain", estimator, {})
    mixture = tmp_path / "mix.wav"
    sf.write(str(mixture), song(3.0, 44100, 2, seed=4), 44100, subtype="PCM_16")

    def vocals(model: str, *flags: str) -> np.ndarray:
        folder = tmp_path / f"{model}{len(flags)}"
        code, _, err = run("separate", mixture, "-o", folder, "--model", model, "--bit-depth", "16", *flags)
        assert code == 0, err
        stems = [
            sf.read(str(folder / "mix" / f"{s}.wav"), dtype="int16")[0].astype(np.int64) for s in config["sources"]
        ]
        assert np.array_equal(sum(stems), sf.read(str(mixture), dtype="int16")[0])
        certificate = json.loads((folder / "mix" / "stemdesk-certificate.json").read_text())
        return stems[0], certificate["settings"]

    gated, settings = vocals("gated")
    assert settings["vocal_gate"] == [0.3, 0.2] and settings["binarise"] == 12.0 and settings["wiener_iterations"] == 1
    asked, _ = vocals("plain", "--vocal-gate", "0.3,0.2", "--binarise", "12", "--wiener", "1")
    assert np.array_equal(gated, asked)
    left_out, settings = vocals("gated", "--no-model-postprocessing")
    assert settings["vocal_gate"] is None and settings["model_postprocessing"] is False
    plain, _ = vocals("plain")
    assert np.array_equal(left_out, plain) and not np.array_equal(gated, plain)

    card = json.loads((user_models_dir() / "gated" / "card.json").read_text())
    card["postprocessing"] = {"wiener": 1, "shout": True}
    (user_models_dir() / "gated" / "card.json").write_text(json.dumps(card))
    code, _, err = run("separate", mixture, "-o", tmp_path / "bad", "--model", "gated")
    assert code == 1 and "postprocessing block" in err and "Reinstall" in err


def test_autoencoder_pretraining_lowers_its_loss_and_its_encoder_starts_the_separator(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    config = TrainConfig(
        estimator="lin_cnn",
        config={"sources": ["vocals", "accompaniment"], "stft": {"n_fft": 512, "hop": 128, "sample_rate": 16000}}
        | {k: v for k, v in small_configs()["lin_cnn"].items() if k != "sources"},
        excerpt_seconds=1.0,
        batch=2,
        lr=0.0,  # the training step leaves the weights as pre-training made them
        validate_every=1,
        max_steps=1,
    )
    trainer = Trainer(config, songs[:2], songs[2:], tmp_path / "run")
    fresh = {k: v.clone() for k, v in trainer.estimator.state_dict().items()}
    trainer.init_input_scaling()
    scaled = {k: v.clone() for k, v in trainer.estimator.state_dict().items()}
    fixed = trainer.mixture_magnitudes(2)
    report = pretrain_autoencoder(trainer.estimator, lambda: fixed, seconds=60, steps=60, lr=1e-2)
    # The encoder pools frequencies by 12 (Lin's layers), so it rebuilds the spectral envelope, not the noise's
    # fine structure: the loss falls by about a quarter here, not to zero.
    assert report["steps"] == 60 and report["loss_last"] < 0.85 * report["loss_first"], report
    pretrained = {k: v.clone() for k, v in trainer.estimator.state_dict().items()}
    assert not torch.equal(pretrained["trunk.0.weight"], fresh["trunk.0.weight"])
    assert not torch.equal(pretrained["dense.0.weight"], fresh["dense.0.weight"])
    assert torch.equal(pretrained["dense.3.weight"], fresh["dense.3.weight"])  # the output layer starts fresh
    assert torch.equal(pretrained["scaler.mean"], scaled["scaler.mean"])  # the scaling set from data is kept

    trainer.run(export=export_model(tmp_path / "models" / "lin", "lin", {}))
    exported, _ = load_estimator("lin")
    for name, value in exported.state_dict().items():
        assert torch.equal(value, pretrained[name]), name  # no re-initialisation, no second scaling

    with pytest.raises(ValueError, match="no encoder to pre-train"):
        FrameAutoencoder(build_estimator("band_mlp", {"sources": ["a", "b"], "stft": {"n_fft": 512, "hop": 128}}))


def test_a_run_killed_after_pretraining_resumes_from_the_pretrained_encoder(tmp_path, monkeypatch):
    from stemdesk.training import scratch
    from stemdesk.training.scratch import ScratchRequest, plan, train_recipe

    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    small = {k: v for k, v in small_configs()["lin_cnn"].items() if k != "sources"}
    made = plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn", settings=small, batch=2, minutes=5))

    def killed(self, **_):
        raise KeyboardInterrupt  # the process ends before training's first checkpoint

    monkeypatch.setattr(Trainer, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        train_recipe(made, songs[:2], songs[2:], tmp_path, export=None, pretrain_steps=3)
    monkeypatch.undo()
    report = (tmp_path / "pretraining.json").read_text()
    assert json.loads(report)["steps"] == 3
    again = plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn", settings=small, batch=2, minutes=5, steps=1))
    again.config.lr = 0.0  # one step that leaves the weights as they were
    monkeypatch.setattr(scratch, "pretrain_autoencoder", lambda *args, **kwargs: pytest.fail("pre-trained again"))
    trainer, pretrained = train_recipe(again, songs[:2], songs[2:], tmp_path, export=None, pretrain_steps=3)
    assert pretrained == json.loads(report)
    assert trainer.step == 1
    saved = load_file(str(tmp_path / "checkpoints" / "checkpoint.safetensors"))
    fresh = build_estimator("lin_cnn", again.config.config).state_dict()
    assert not torch.equal(saved["model.trunk.0.weight"], fresh["trunk.0.weight"])
    assert torch.equal(trainer.estimator.state_dict()["trunk.0.weight"], saved["model.trunk.0.weight"])


def test_a_warm_restart_starts_from_the_weights_given_and_its_card_counts_both_runs(tmp_path, monkeypatch):
    """lab/benchmarks/reproduction.py --warm-restart: a recipe trains on from a trained model's weights (Lin's
    pre-training and input scaling are not done again), and the card's budget adds up both runs."""
    from stemdesk.training import scratch
    from stemdesk.training.scratch import ScratchRequest, plan, train_recipe, warm_restart_budget

    songs = [synthetic_song(f"s{i}", i) for i in range(3)]
    small = {k: v for k, v in small_configs()["lin_cnn"].items() if k != "sources"}
    first = plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn", settings=small, batch=2, minutes=5, steps=3))
    trained, _ = train_recipe(first, songs[:2], songs[2:], tmp_path / "first", export=None, pretrain_steps=2)
    start = {k: v.clone() for k, v in trained.estimator.state_dict().items()}
    monkeypatch.setattr(scratch, "pretrain_autoencoder", lambda *args, **kwargs: pytest.fail("pre-trained again"))
    still = plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn", settings=small, batch=2, minutes=5, steps=1))
    still.config.lr = 0.0  # a step that leaves the weights as they were: they are the start's
    trainer, pretrained = train_recipe(still, songs[:2], songs[2:], tmp_path / "same", export=None, init_state=start)
    assert pretrained is None and trainer.step == 1
    for name, value in trainer.estimator.state_dict().items():
        assert torch.equal(value, start[name]), name  # no fresh layer, no input scaling set again
    again = plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn", settings=small, batch=2, minutes=5, steps=2))
    again.config.warmup = 2
    moved, _ = train_recipe(again, songs[:2], songs[2:], tmp_path / "second", export=None, init_state=start)
    assert moved.step == 2
    assert any(not torch.equal(v, start[k]) for k, v in moved.estimator.state_dict().items())  # it trained on
    assert torch.equal(moved.estimator.state_dict()["scaler.mean"], start["scaler.mean"])

    before = {
        "minutes": 36.0,
        "decay_minutes": 6.0,
        "steps": 700,
        "training_wall_seconds": 2160,
        "training_cpu_seconds": 2100,
        "pretraining": {"steps": 40},
        "loss_trend": {"last_quarter_change_percent": -3.0},
    }
    after = {**before, "steps": 650, "training_wall_seconds": 2150, "training_cpu_seconds": 2080, "pretraining": None}
    after["loss_trend"] = {"last_quarter_change_percent": -0.5}
    total = warm_restart_budget(after, before, "ab" * 32)
    assert (total["steps"], total["training_cpu_seconds"], total["minutes"]) == (1350, 4180, 72.0)
    assert total["pretraining"] == {"steps": 40}  # the pre-training the start had
    assert total["loss_trend"] == after["loss_trend"]  # whether the last run had flattened
    assert total["warm_restart"]["from_weights_sha256"] == "ab" * 32
    assert total["warm_restart"]["before"]["steps"] == 700 and total["warm_restart"]["after"]["steps"] == 650


def test_the_window_objective_scores_each_excerpt_against_the_frames_it_covers():
    torch.manual_seed(0)
    batch, channels, bins, frames, width = 1, 1, 3, 5, 2
    goal = (torch.rand(batch, channels, bins, frames) > 0.5).float()
    probs = torch.rand(batch * channels, frames + width - 1, bins, width) * 0.9 + 0.05
    terms = []
    for s in range(frames + width - 1):
        for k in range(width):
            frame = s - (width - 1) + k
            if 0 <= frame < frames:
                p, g = probs[0, s, :, k], goal[0, 0, :, frame]
                terms.append(-(g * p.log() + (1 - g) * (1 - p).log()))
    expected = torch.cat(terms).mean()
    torch.testing.assert_close(window_bce(probs, goal), expected)


def test_deep_karaokes_window_objective_learns_a_fixed_batch():
    from stemdesk.core.stft import STFT
    from stemdesk.training.train import objective_loss, regroup

    torch.manual_seed(0)
    config = {
        "sources": ["vocals", "accompaniment"],
        "stft": {"n_fft": 512, "hop": 128, "sample_rate": 16000},
        **{k: v for k, v in small_configs()["deep_karaoke"].items() if k != "sources"},
        "objective": "ibm_bce_windows",
    }
    estimator = build_estimator("deep_karaoke", config)
    stems = regroup(synthetic_song("a", 0).audio()[None, :, :, :16000], [[0], [1, 2, 3]])
    optimiser = torch.optim.Adam(estimator.parameters(), lr=3e-3)
    losses = []
    estimator.train()
    for _ in range(30):
        loss = objective_loss(estimator, STFT(estimator.stft_config), stems)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.9 * losses[0], losses
