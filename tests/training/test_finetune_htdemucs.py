"""Fine-tuning a waveform network (HTDemucs, issue 56): the trainer trains it on its own waveform stems, the default
plan for a base with no advice comes from its kind, a tune that cannot beat the base exports nothing and says why
with numbers, an exported tune is an installed model that separates and nulls and whose card says its weights
derive from research-only ones, and the leave-one-song-out benchmark resumes from the folds it has."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import MULTITRACK_RATE, parts, run, write_song

from stemdesk.core.errors import ModelError
from stemdesk.core.estimators.htdemucs import HTDemucs
from stemdesk.io.model_store import find_model, read_card, save_model, user_models_dir
from stemdesk.training.augment import NO_AUGMENTATION
from stemdesk.training.data import Song, regroup
from stemdesk.training.finetune import (
    DEFAULT_LR,
    KIND_ADVICE,
    FineTuneRequest,
    derived_licence,
    fine_tune_plan,
)
from stemdesk.training.lora import add_adapters, merged_copy
from stemdesk.training.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]
RESEARCH = {"weights": "personal and research use only (derived from Meta's HTDemucs weights)"}


def small_htdemucs(seed: int = 0) -> HTDemucs:
    torch.manual_seed(seed)
    return HTDemucs(
        sample_rate=MULTITRACK_RATE,
        width=8,
        bottom_channels=16,
        transformer_layers=2,
        heads=2,
        nfft=512,
        segment=8192,
    )


@pytest.fixture
def base(tmp_path, monkeypatch) -> str:
    """A small random HTDemucs installed as "small-htdemucs", its card saying research use, as HTDemucs's does."""
    save_model(
        tmp_path / "models" / "small-htdemucs",
        "small-htdemucs",
        small_htdemucs(),
        {"description": "random", "licenses": RESEARCH, "redistributable": False},
    )
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    return "small-htdemucs"


@pytest.fixture
def songs_folder(tmp_path) -> Path:
    root = tmp_path / "songs"
    for i in range(3):
        write_song(root / f"song{i}", parts(i, seconds=3.0))
    return root


def songs(count: int = 2) -> list[Song]:
    out = []
    for i in range(count):
        stems = np.stack([a.T for a in parts(i, seconds=2.0).values()])  # vocals, drums, bass, other
        out.append(Song.from_float(f"s{i}", stems, [True] * 4, MULTITRACK_RATE))
    return out


@pytest.mark.parametrize("objective", ["waveform_l1", "usdr"])
def test_the_trainer_fits_a_waveform_network_to_a_fixed_batch(tmp_path, objective):
    model = small_htdemucs()
    config = TrainConfig(
        estimator="htdemucs",
        config=model.config(),
        excerpt_seconds=model.segment / MULTITRACK_RATE,
        batch=2,
        lr=2e-3,
        objective=objective,
        remix=0.0,
        augmentation=NO_AUGMENTATION,
    )
    train = songs()
    trainer = Trainer(config, train, train[:1], tmp_path / "run", init_state=model.state_dict())
    trainer.train_mode()
    torch.manual_seed(0)
    batch = regroup(trainer.sampler.batch(2), trainer.mapping)
    assert batch.shape == (2, 4, 2, model.segment)
    losses = [trainer.train_step(batch) for _ in range(12)]
    assert all(loss is not None and np.isfinite(loss) for loss in losses)
    assert all(later < earlier for earlier, later in zip(losses[::4], losses[4::4])), losses
    assert losses[-1] < losses[0] - (0.2 if objective == "usdr" else 0.02 * losses[0]), losses


def test_adapters_cover_htdemucs_dense_layers_and_attention_projections_and_merge_into_a_plain_model():
    model = small_htdemucs()
    with torch.no_grad():  # the transformer's branches at full weight (layer scales start at 1e-4), so it is heard
        for name, parameter in model.named_parameters():
            if ".gamma_" in name:
                parameter.fill_(1.0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    plain_keys = set(start)
    wrapped = add_adapters(model, 4)
    for layer in ("layers.0", "layers_t.1"):
        for part in ("linear1", "linear2"):
            assert f"crosstransformer.{layer}.{part}" in wrapped
    assert "crosstransformer.layers.0.self_attn.out_proj" in wrapped
    assert "crosstransformer.layers.0.self_attn.in_proj_weight" in wrapped
    assert "crosstransformer.layers.1.cross_attn.in_proj_weight" in wrapped
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("down", "up")) for n in trainable)
    with torch.no_grad():  # a trained adapter: nonzero up-projections
        for name, parameter in model.named_parameters():
            if name.endswith("up"):
                parameter.normal_(0, 0.05)
    mix = torch.randn(1, 2, 8192) * 0.1
    model.eval()
    merged = merged_copy(model).eval()
    assert set(merged.state_dict()) == plain_keys
    plain, before = small_htdemucs().eval(), small_htdemucs().eval()
    plain.load_state_dict(merged.state_dict())
    before.load_state_dict(start)
    tokens, tokens_t = torch.randn(1, 16, 4, 6), torch.randn(1, 16, 24)  # the transformer's two inputs
    with torch.no_grad():
        adapted = model.crosstransformer(tokens, tokens_t)
        for got, was in zip(adapted, before.crosstransformer(tokens, tokens_t)):
            assert (got - was).abs().max() > 1e-2  # the adapters change what the transformer computes
        for got, want in zip(plain.crosstransformer(tokens, tokens_t), adapted):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)  # and the merged model computes the same
        torch.testing.assert_close(plain(mix), model(mix), atol=1e-6, rtol=1e-4)
    key = "crosstransformer.layers.0.self_attn.in_proj_weight"
    assert not torch.equal(merged.state_dict()[key], start[key])


def test_a_base_without_advice_is_tuned_as_its_kind_advises_and_the_users_choices_win(base, tmp_path):
    card = find_model(base)
    assert "fine_tune" not in card.raw
    plan = fine_tune_plan(card, FineTuneRequest(data=Path("."), base=base, name="x"), waveform=True)
    advice = KIND_ADVICE["htdemucs"]
    assert (plan.lr, plan.adapters, plan.batch, plan.objective, plan.advice_from) == (
        advice["lr"],
        0,
        advice["batch"],
        "usdr",
        "kind",
    )
    # the advice trains the three outermost decoder layers of each branch and nothing else
    config = TrainConfig(estimator="htdemucs", config=card.config, freeze=plan.freeze, excerpt_seconds=0.5)
    trainer = Trainer(config, songs(), songs()[:1], tmp_path / "run")
    trained = {
        n.split(".")[0] + "." + n.split(".")[1] for n, p in trainer.estimator.named_parameters() if p.requires_grad
    }
    assert trained == {f"{coder}.{i}" for coder in ("decoder", "tdecoder") for i in (1, 2, 3)}
    adapters = fine_tune_plan(card, FineTuneRequest(data=Path("."), base=base, name="x", adapters=8), waveform=True)
    assert (adapters.adapters, adapters.lr, adapters.freeze) == (8, DEFAULT_LR, ())  # full-tune advice does not apply
    mine = fine_tune_plan(card, FineTuneRequest(data=Path("."), base=base, name="x", lr=1e-6, freeze=()))
    assert (mine.lr, mine.freeze, mine.adapters) == (1e-6, (), 0)


def test_the_licence_of_a_tune_follows_its_base():
    class Card:
        def __init__(self, raw):
            self.raw = raw

    research = derived_licence(Card({"licenses": RESEARCH}), "htdemucs")
    assert research["weights"].startswith(
        "derived from htdemucs's weights, which are for personal and research use only"
    )
    flagged = derived_licence(Card({"licenses": {}, "training_data": {"research_only": "MUSDB18"}}), "m")
    assert "personal and research use only" in flagged["weights"]
    free = derived_licence(Card({"licenses": {"weights": "CC0-1.0"}}), "stemdesk-4stem")
    assert "research" not in free["weights"]


def test_a_tune_that_cannot_beat_the_base_exports_nothing_and_says_why_with_numbers(base, songs_folder):
    code, out, err = run(
        "train", "--from", base, "--data", songs_folder, "--valid", "song2", "--out", "never-better",
        "--minutes", "0.4", "--lr", "0", "--adapters", "0", "--threads", "1", "--no-augment",
    )  # fmt: skip
    assert code != 0
    assert "never beat the base model (small-htdemucs)" in err and "nothing was exported" in err
    assert "+0.00 dB mean validation uSDR over the base" in err and "vocals +0.00" in err
    with pytest.raises(ModelError):
        find_model("never-better")


def test_a_fine_tuned_htdemucs_is_an_installed_model_that_separates_nulls_and_says_where_it_came_from(
    base, songs_folder, tmp_path
):
    name = "my-small-htdemucs"
    code, out, err = run(
        "train", "--from", base, "--data", songs_folder, "--valid", "song2", "--out", name,
        "--minutes", "0.6", "--lr", "3e-3", "--freeze", "--threads", "1", "--no-augment",
    )  # fmt: skip
    assert code == 0, err
    assert f"{name}: fine-tuned from {base}" in out
    card = find_model(name)
    raw = card.raw
    assert raw["estimator"] == "htdemucs" and raw["parent"]["id"] == base
    assert raw["licenses"]["weights"].startswith(
        f"derived from {base}'s weights, which are for personal and research use only"
    )
    assert "personal and research use only" in raw["training_data"]["research_only"]
    assert raw["redistributable"] is False
    assert raw["training_data"]["valid_songs"] == ["song2"] and raw["training"]["minutes"] == 0.6
    result = raw["fine_tune_result"]
    assert result["base"] == base and result["gain_db"] > result["noise_db"] > 0
    assert set(result["gain_usdr_db"]) == {"drums", "bass", "other", "vocals"}
    assert raw["fine_tune"]["batch"] == 1 and raw["fine_tune"]["freeze"] == [] and "adapters" not in raw["fine_tune"]
    assert read_card(card.folder).weights_sha256 == raw["weights_sha256"]
    readme = (card.folder / "README.md").read_text()
    assert "## Fine-tuned" in readme and f"Weights: derived from {base}'s weights" in readme

    mixture = tmp_path / "take.wav"
    sf.write(str(mixture), sum(parts(7, seconds=2.0).values()), MULTITRACK_RATE, subtype="PCM_16")
    code, _, err = run("separate", mixture, "-o", tmp_path / "out", "--model", name, "--bit-depth", "16")
    assert code == 0, err
    stems = [tmp_path / "out" / "take" / f"{source}.wav" for source in card.sources]
    total = sum(sf.read(str(path), dtype="int16")[0].astype(np.int64) for path in stems)
    assert np.array_equal(total, sf.read(str(mixture), dtype="int16")[0].astype(np.int64))  # bit-exact
    certificate = json.loads((tmp_path / "out" / "take" / "stemdesk-certificate.json").read_text())
    assert name in json.dumps(certificate)

    code, out, err = run("models", "remove", name)
    assert code == 0, err
    assert not card.folder.exists()


def benchmark():
    spec = importlib.util.spec_from_file_location("finetune_benchmark", REPO / "benchmarks" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_keeps_each_finished_fold_and_a_later_run_skips_it(tmp_path, monkeypatch):
    bench = benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    data = tmp_path / "data"
    for song_name in ("a", "b"):
        (data / song_name).mkdir(parents=True)
    argv = ["--data", str(data), "--from", "htdemucs", "--minutes", "30"]
    args = bench.argparse.Namespace(
        base="htdemucs", data=data, minutes=30.0, threads=2, lr=None, freeze=None, adapters=None
    )
    settings = bench.settings_of(args)
    done = {"fold": "a", "exported": False, "base": {"vocals": 5.0}, "tuned": {"vocals": 5.1}, "best_step": 16,
            "steps": 48, "lr": 3e-4, "freeze": [], "settings": settings,
            "vocal_error": {"base": {"sdr_where_sung_db": 1, "error_share_where_silent": 0, "silent_seconds": 0}}}  # fmt: skip
    path = bench.results_file("htdemucs")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([done]))
    started = []

    class Fold:  # the fold's process: writes its result at once
        def __init__(self, command, env, stdout, stderr):
            fold = command[command.index("--fold") + 1]
            started.append((fold, command[command.index("--threads") + 1]))
            assert str(user_models_dir()) in env["STEMDESK_MODELS_PATH"].split(os.pathsep)  # HTDemucs is found
            for folder in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "TMPDIR"):
                assert Path(env[folder]).is_relative_to(tmp_path / "results"), folder  # the fold's own, not yours
            assert Path(env["TMPDIR"]).is_dir()
            out = Path(command[command.index("--out") + 1])
            result = dict(done, fold=fold, exported=True, steps=64)
            result.pop("settings")
            out.write_text(json.dumps(result))

        def poll(self):
            return 0

        returncode = 0

    monkeypatch.setattr(bench.subprocess, "Popen", Fold)
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: None)
    bench.main(argv)
    assert started == [("b", "2")]  # fold a was already there; 2 threads per fold for htdemucs
    kept = json.loads(path.read_text())
    assert [r["fold"] for r in kept] == ["a", "b"] and all(r["settings"] == settings for r in kept)
    table = path.with_suffix(".md").read_text()
    assert "2 threads per fold" in table and "| median over folds |" in table and "Target" in table
    assert bench.work_folder(settings).parent == tmp_path / "results" / "finetune-work"

    started.clear()
    bench.main(argv)
    assert started == []  # both folds kept
    bench.main([*argv, "--minutes", "20"])
    assert [fold for fold, _ in started] == ["a", "b"]  # other settings: kept results do not count


@pytest.mark.parametrize("lr", [None, 1e-4])
def test_a_fold_records_the_rate_and_frozen_parts_it_ran_with_even_when_resumed(lr, tmp_path, monkeypatch):
    from helpers import install_small_htdemucs

    import stemdesk.training.finetune as finetune

    bench = benchmark()
    base = install_small_htdemucs(tmp_path / "models", monkeypatch)

    def resumed(request, progress):  # a fold resumed past its start: the trainer reports no "start" event
        return {"base": {"usdr": {"vocals": 5.0}}, "fine_tuned": {"usdr": {"vocals": 5.2}}, "steps": 48}

    monkeypatch.setattr(finetune, "fine_tune", resumed)
    monkeypatch.setattr(bench, "vocal_error", lambda *args: {"sdr_where_sung_db": 5.0})
    monkeypatch.setattr(bench.threading, "Thread", lambda **kwargs: type("Idle", (), {"start": lambda self: None})())
    out = tmp_path / "fold" / "result.json"
    out.parent.mkdir()
    args = bench.argparse.Namespace(
        fold="a",
        out=out,
        data=tmp_path,
        base=base,
        minutes=30.0,
        lr=lr,
        freeze=None,
        adapters=None,
        ema=None,
        threads=1,
    )
    bench.run_fold(args)
    result = json.loads(out.read_text())
    assert result["lr"] == (lr or KIND_ADVICE["htdemucs"]["lr"])  # the user's rate wins, else the kind's advice
    assert result["freeze"] == list(KIND_ADVICE["htdemucs"]["freeze"])


def test_folds_run_one_at_a_time_when_their_threads_would_oversubscribe_the_cores():
    bench = benchmark()
    assert bench.side_by_side(parallel=2, threads=2, cores=2) == 1
    assert bench.side_by_side(parallel=2, threads=1, cores=2) == 2
    assert bench.side_by_side(parallel=4, threads=2, cores=16) == 4


def test_a_fold_that_exported_nothing_reports_the_base_and_its_best_step_after_a_resume(tmp_path):
    bench = benchmark()
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    # resumed: no "start" progress event in this process, the base's scores are in the checkpoint
    start = {"valid_mean": 5.0, "valid_usdr": {"vocals": 6.0, "drums": 4.0}, "songs": {}}
    (checkpoints / "checkpoint.json").write_text(json.dumps({"start": start, "step": 32}))
    rounds = [
        {"step": 16, "valid_mean": 4.9, "valid_usdr": {"vocals": 6.1, "drums": 3.7}},
        {"step": 32, "valid_mean": 4.95, "valid_usdr": {"vocals": 6.2, "drums": 3.7}},
    ]
    (checkpoints / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rounds))
    result = bench.unexported_result(checkpoints, {})
    assert result["exported"] is False and result["base"] == {"vocals": 6.0, "drums": 4.0}
    assert result["tuned"] == {"vocals": 6.2, "drums": 3.7} and result["best_step"] == 32 and result["steps"] == 32


def test_the_report_alone_runs_no_fold_and_shows_every_round_and_each_stems_best(tmp_path, monkeypatch):
    bench = benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    argv = ["--data", str(data), "--from", "htdemucs", "--minutes", "30"]
    args = bench.argparse.Namespace(
        base="htdemucs", data=data, minutes=30.0, threads=2, lr=None, freeze=None, adapters=None
    )
    rounds = [{"step": 24, "usdr": {"vocals": 5.4, "drums": 3.0}}, {"step": 48, "usdr": {"vocals": 5.2, "drums": 4.5}}]
    done = {"fold": "a", "exported": False, "base": {"vocals": 5.0, "drums": 4.0}, "tuned": {"vocals": 5.2, "drums": 4.5},
            "best_step": 48, "steps": 48, "lr": 3e-4, "freeze": [], "settings": bench.settings_of(args), "rounds": rounds,
            "vocal_error": {"base": {"sdr_where_sung_db": 1, "error_share_where_silent": 0, "silent_seconds": 0}}}  # fmt: skip
    path = bench.results_file("htdemucs")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([done]))
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: pytest.fail("--report ran a fold"))
    bench.main([*argv, "--report"])
    table = path.with_suffix(".md").read_text()
    assert "| a | 0 | 5.00 | 4.00 | – | – | 4.50 |" in table  # the base as step 0
    assert "| a | 24 | 5.40 | 3.00 | – | – | 4.20 |" in table
    assert "vocals +0.40 (step 24); drums +0.50 (step 48)" in table


def test_a_moving_average_is_its_own_setting_and_reaches_the_fold(tmp_path, monkeypatch):
    bench = benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    plain = bench.argparse.Namespace(
        base="htdemucs", data=data, minutes=30.0, threads=2, lr=None, freeze=None, adapters=None
    )
    averaged = bench.argparse.Namespace(**vars(plain), ema=0.98)
    assert "ema" not in bench.settings_of(plain)  # results kept before the option still count
    assert bench.settings_of(averaged)["ema"] == 0.98
    commands = []

    class Fold:
        def __init__(self, command, env, stdout, stderr):
            commands.append(command)
            raise SystemExit  # enough: the command is what this test reads

    monkeypatch.setattr(bench.subprocess, "Popen", Fold)
    with pytest.raises(SystemExit):
        bench.main(["--data", str(data), "--from", "htdemucs", "--ema", "0.98"])
    assert commands[0][commands[0].index("--ema") + 1] == "0.98"


def scripted_validation(monkeypatch, rounds: list[dict[str, float]]) -> None:
    """The trainer's validations return these medians in turn (the first is the base's), then the last again."""
    from stemdesk.training import train

    given = iter(rounds)
    last: dict = {}

    def validate(self):
        nonlocal last
        last = next(given, last)
        return {"median": dict(last), "songs": {"song2": dict(last)}}

    monkeypatch.setattr(train.Trainer, "validate", validate)


BASE_SCORES = {"vocals": 5.0, "drums": 5.0, "bass": 5.0, "other": 5.0}


def test_a_round_that_costs_a_stem_too_much_is_never_exported_and_the_refusal_says_which(
    base, songs_folder, monkeypatch
):
    # every round raises the mean by 0.25 dB, paid for by the drums (-1.00 dB)
    costly = {"vocals": 7.0, "drums": 4.0, "bass": 5.0, "other": 5.0}
    scripted_validation(monkeypatch, [BASE_SCORES, costly])
    code, out, err = run(
        "train", "--from", base, "--data", songs_folder, "--valid", "song2", "--out", "costly",
        "--minutes", "0.4", "--threads", "1", "--no-augment",
    )  # fmt: skip
    assert code != 0 and "nothing was exported" in err
    assert "cost a stem more than 0.2 dB (vocals +2.00, drums -1.00, bass +0.00, other +0.00)" in err
    with pytest.raises(ModelError):
        find_model("costly")


def test_the_best_round_that_keeps_every_stem_is_exported(base, songs_folder, monkeypatch):
    # the first round keeps every stem within 0.2 dB, the later ones gain more on the mean but cost the drums
    keeps = {"vocals": 6.5, "drums": 4.85, "bass": 5.0, "other": 5.0}
    costly = {"vocals": 8.0, "drums": 4.0, "bass": 5.0, "other": 5.0}
    scripted_validation(monkeypatch, [BASE_SCORES, keeps, costly])
    code, out, err = run(
        "train", "--from", base, "--data", songs_folder, "--valid", "song2", "--out", "kept",
        "--minutes", "0.5", "--threads", "1", "--no-augment",
    )  # fmt: skip
    assert code == 0, err
    result = read_card(find_model("kept").folder).raw["fine_tune_result"]
    assert result["gain_usdr_db"] == {"vocals": 1.5, "drums": -0.15, "bass": 0.0, "other": 0.0}
    # asked for, the stems' floor goes: the round that gained most is exported
    scripted_validation(monkeypatch, [BASE_SCORES, keeps, costly])
    code, out, err = run(
        "train", "--from", base, "--data", songs_folder, "--valid", "song2", "--out", "anything-goes",
        "--minutes", "0.5", "--threads", "1", "--no-augment", "--max-stem-loss", "100",
    )  # fmt: skip
    assert code == 0, err
    result = read_card(find_model("anything-goes").folder).raw["fine_tune_result"]
    assert result["gain_usdr_db"]["vocals"] == 3.0


def test_in_sample_scores_each_exported_tune_on_the_songs_it_trained_on_and_runs_no_fold(
    base, songs_folder, tmp_path, monkeypatch
):
    from stemdesk.training.dataset import SOURCES, discover, load_checked
    from stemdesk.training.validation import Validator

    bench = benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    argv = ["--data", str(songs_folder), "--from", base, "--minutes", "30", "--threads", "1"]
    args = bench.argparse.Namespace(
        base=base, data=songs_folder, minutes=30.0, threads=1, lr=None, freeze=None, adapters=None
    )
    settings = bench.settings_of(args)
    tune = small_htdemucs(seed=1)  # the fold's exported tune, installed in the fold's own folders
    save_model(bench.tune_folder(bench.work_folder(settings), "song2"), "fold", tune, {"licenses": RESEARCH})
    common = {"best_step": 24, "steps": 24, "lr": 3e-4, "freeze": [], "settings": settings,
              "vocal_error": {"base": {"sdr_where_sung_db": 1, "error_share_where_silent": 0, "silent_seconds": 0}}}  # fmt: skip
    results = [
        {"fold": f"song{i}", "exported": i == 2, "base": {s: i - 3.0 for s in SOURCES},
         "tuned": {s: i - 2.5 for s in SOURCES}, **common}
        for i in range(3)
    ]  # fmt: skip
    path = bench.results_file(base)
    path.write_text(json.dumps(results))
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: pytest.fail("--in-sample ran a fold"))
    bench.main([*argv, "--in-sample"])
    kept = {r["fold"]: r for r in json.loads(path.read_text())}
    assert "in_sample" not in kept["song0"] and "in_sample" not in kept["song1"]  # they exported nothing
    scored = kept["song2"]["in_sample"]
    assert set(scored) == {"song0", "song1"}  # the songs the fold trained on, not the one it held out
    # the tune's scores there, as the trainer's validation scores a song (not the base's)
    _, loaded = load_checked([song for song in discover(songs_folder) if song.name != "song2"])
    validator = Validator(list(loaded.values()), SOURCES)
    expected = validator.score(tune.eval())["songs"]["song0"]
    assert scored["song0"] == {source: round(value, 2) for source, value in expected.items()}
    assert scored["song0"] != {s: round(v, 2) for s, v in validator.score(small_htdemucs(0))["songs"]["song0"].items()}
    table = path.with_suffix(".md").read_text()
    vocals = scored["song0"]["vocals"]
    assert f"| song2 held out | song0 | -3.00 → {vocals:.2f} ({vocals + 3:+.2f}) |" in table  # song0's fold's base
    assert "| song2 held out | gain on song2 (never heard) | +0.50 |" in table
    monkeypatch.setattr(bench, "in_sample", lambda *a: pytest.fail("a tune already scored was scored again"))
    bench.main([*argv, "--in-sample"])
    assert {r["fold"]: r for r in json.loads(path.read_text())} == kept
