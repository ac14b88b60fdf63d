"""The band-split correction as lab/default_models.py and lab/widen.py put it on the shipped cascade: refined from the
shipped weights, stacked, cut after training to its bands below a frequency (the bands well below the cut compute
what they did and the card keeps what the weights learnt). (Moved from tests/training/test_refined.py.)"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import mags, shipped_default_plain

from lab.widen import refine_cascade
from stemdesk.core.estimators import build_estimator
from stemdesk.training.dataset import SOURCES


def write_songs(data) -> None:
    """Five 7-second song folders laid out as ../shared/data: four in musdb7-train (the fourth validates, as every
    seventh from the fourth does) and the CC0 validation song 3.Sodium."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    rate, t = 44100, np.arange(7 * 44100) / 44100  # longer than a training excerpt (6 s)
    folders = [data / "musdb7-train" / f"song {i}" for i in range(4)] + [data / "cc0-efree" / "3.Sodium"]
    for i, folder in enumerate(folders):
        folder.mkdir(parents=True)
        stems = {
            "vocals": 0.2 * np.sin(2 * np.pi * (500 + 40 * i) * t),
            "drums": 0.3 * (rng.random(t.size) < 0.001),
            "bass": 0.3 * np.sin(2 * np.pi * (55 + 5 * i) * t),
            "other": 0.05 * rng.standard_normal(t.size),
        }
        for name, audio in stems.items():
            sf.write(folder / f"{name}.wav", np.stack([audio, audio], axis=1), rate, subtype="PCM_16")


def test_the_shipped_default_is_its_trained_cascade_plus_a_correction_that_changes_its_stems():
    """The correction starts at zero on the plain cascade it was put on (the same masks, bit for bit); the shipped
    correction is trained, so the shipped masks are not the plain cascade's; a second correction is refused."""
    shipped, plain, config = shipped_default_plain()
    state, second = refine_cascade(plain.state_dict(), config, dim=8)
    assert second["kind"] == "refined" and second["config"]["base"] == config["second"]
    net = build_estimator("cascade", {**config, "second": second})
    net.load_state_dict(state)  # strict: every parameter named, none left over
    net.eval()
    mag = mags(40, seed=3)
    with torch.no_grad():
        assert torch.equal(net(mag), plain(mag))
        moved = (shipped(mag) - plain(mag)).abs()
    assert moved.max() > 0.05, "the shipped correction does not change the masks"
    with pytest.raises(ValueError, match="already has a correction"):
        refine_cascade(shipped.state_dict(), {**config, "second": second})


def test_a_second_correction_stacks_on_the_shipped_one_and_starts_with_its_masks():
    """With ``stack`` the shipped correction becomes part of the new one's base ("second.base."), which a run that
    refines freezes: the stacked cascade starts with the shipped masks bit for bit, and only the new bands below
    its own max_freq change them."""
    shipped, _, _ = shipped_default_plain()
    config = shipped.config()
    state, second = refine_cascade(shipped.state_dict(), config, stack=True, dim=8, max_freq=1378.0)
    assert second["config"]["base"] == config["second"] and second["config"]["max_freq"] == 1378.0
    net = build_estimator("cascade", {**config, "second": second})
    net.load_state_dict(state)
    assert {k for k in state if k.startswith("second.base.")} == {
        "second.base." + k[len("second.") :] for k in shipped.state_dict() if k.startswith("second.")
    }
    net.eval()
    mag = mags(40, seed=4)
    with torch.no_grad():
        assert torch.equal(net(mag), shipped(mag))
        for head in net.second.heads:
            torch.nn.init.normal_(head, std=0.1)
        moved = (net(mag) - shipped(mag)).abs()
    top = net.second.max_bin
    assert moved[:, 1:, :, :top].max() > 0.01  # drums, bass and other move below the new correction's top
    assert moved[:, :, :, top:].max() == 0  # and not above it


def test_a_correction_of_the_vocal_unet_starts_with_the_shipped_masks_and_moves_the_vocals_below_its_top():
    """``stage="first"``: the U-Net gives logits (the softmax over [logit, 0] is its sigmoid mask, to rounding) and a
    correction sits on them ("first." → "first.base."). Untrained, the cascade computes the shipped masks; trained,
    the vocals' mask moves below the correction's top and not between it and the U-Net's top (1024 bins), while the
    masks still sum to one."""
    shipped, _, _ = shipped_default_plain()
    config = shipped.config()
    state, first = refine_cascade(shipped.state_dict(), config, stage="first", dim=8, max_freq=1378.0)
    assert first["config"]["base"]["config"]["mask"] == "softmax"
    assert first["config"]["sources"] == ["vocals", "accompaniment"]
    net = build_estimator("cascade", {**config, "first": first})
    net.load_state_dict(state)  # strict
    assert {k for k in state if k.startswith("first.base.")} == {
        "first.base." + k[len("first.") :] for k in shipped.state_dict() if k.startswith("first.")
    }
    assert net.first_bins == shipped.first_bins == 1024
    net.eval()
    mag = mags(40, seed=5)
    with torch.no_grad():
        before = shipped(mag)
        torch.testing.assert_close(net(mag), before, rtol=0, atol=1e-5)
        for head in net.first.heads:
            torch.nn.init.normal_(head, std=0.1)
        after = net(mag)
    top = net.first.max_bin
    moved = (after - before).abs()
    assert moved[:, 0, :, :top].max() > 0.01
    assert moved[:, 0, :, top:1024].max() < 1e-5
    torch.testing.assert_close(after.sum(dim=1), torch.ones_like(after[:, 0]), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="already has a correction"):
        refine_cascade(state, {**config, "first": first}, stage="first")
    two_unets = {**config["first"], "config": {**config["first"]["config"], "residual": False}}
    with pytest.raises(ValueError, match="one sigmoid mask and its complement"):
        refine_cascade(state, {**config, "first": two_unets}, stage="first")


def test_refining_is_refused_without_a_model_to_continue(capsys):
    """Before any song is loaded."""
    from lab.default_models import main

    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--refine"])
    assert "give --continue-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", "--refine", "32", "--widen", "256"])
    assert "choose one" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", "--refine-below", "2756"])
    assert "with --refine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", "--refine-stage", "first"])
    assert "give --refine" in capsys.readouterr().err


def test_a_cut_correction_keeps_the_bands_well_below_the_cut_and_the_plain_stage_above_it():
    """`cut_cascade_second` on the shipped default (corrected up to 2756 Hz), cut to 1 kHz (bin 93, 20 of its 32
    bands). A band hears its neighbours through five band convolutions of kernel 3, so the bands more than five below
    the new top band compute what they computed before the cut; above the cut the plain cascade's masks stand; in
    between the correction still works. Fewer bands, fewer weights."""
    from lab.widen import cut_cascade_second
    from stemdesk.io.model_store import load_estimator

    shipped, plain, _ = shipped_default_plain()
    _, card = load_estimator("stemdesk-4stem")
    state, second = cut_cascade_second(shipped.state_dict(), card.config, 1000.0)
    assert second["config"]["max_freq"] == 1000.0
    assert second["config"]["base"] == card.config["second"]["config"]["base"]
    cut = build_estimator("cascade", {**card.config, "second": second})
    cut.load_state_dict(state)  # strict: every parameter of the smaller correction, none left over
    cut.eval()
    assert cut.second.max_bin == 93 and cut.second.bands == 20 < shipped.second.bands
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in shipped.parameters())
    mag = mags(40, seed=4)
    with torch.no_grad():
        after, before, base = cut(mag), shipped(mag), plain(mag)
    kept = 14 * 4  # bands 0-13, four bins each
    torch.testing.assert_close(after[:, :, :, :kept], before[:, :, :, :kept], rtol=0, atol=1e-5)
    assert (after[:, :, :, kept:93] - before[:, :, :, kept:93]).abs().max() > 1e-4  # the top bands lost neighbours
    assert (after[:, :, :, :93] - base[:, :, :, :93]).abs().max() > 0.05  # still corrected below the cut
    assert torch.equal(after[:, :, :, 93:], base[:, :, :, 93:])  # the plain stage above it


def test_cutting_is_refused_where_there_is_nothing_to_cut():
    from lab.widen import cut_cascade_second
    from stemdesk.io.model_store import load_estimator

    shipped, plain, config = shipped_default_plain()
    with pytest.raises(ValueError, match="no band-split correction"):
        cut_cascade_second(plain.state_dict(), config, 1000.0)
    _, card = load_estimator("stemdesk-4stem")
    with pytest.raises(ValueError, match="reaches 2756 Hz"):
        cut_cascade_second(shipped.state_dict(), card.config, 5000.0)


def test_the_cut_option_is_checked_before_any_song_is_loaded(capsys, monkeypatch, tmp_path):
    import shutil

    from lab import default_models

    monkeypatch.setattr(default_models, "load_songs", lambda *_: pytest.fail("songs were loaded first"))
    for argv, said in [
        (["--cut", "1000"], "give --continue-from"),
        (["--continue-from", "--cut", "1000", "--refine"], "choose one"),
        (["--continue-from", "--cut", "3000"], "reaches 2756 Hz; cut below that"),
    ]:
        with pytest.raises(SystemExit):
            default_models.main(["stemdesk-4stem", *argv])
        assert said in capsys.readouterr().err
    _, _, plain = shipped_default_plain()
    folder = tmp_path / "stemdesk-4stem"
    shutil.copytree(default_models.ROOT / "models" / "stemdesk-4stem", folder)
    card = json.loads((folder / "card.json").read_text())
    card["training"]["config"]["config"] = plain
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(SystemExit):
        default_models.main(["stemdesk-4stem", "--continue-from", str(tmp_path), "--cut", "1000"])
    assert "has no correction to cut" in capsys.readouterr().err


def test_cutting_with_no_training_exports_the_cut_model_with_its_history_and_restrictions(tmp_path):
    """`default_models stemdesk-4stem --continue-from --cut HZ --minutes 0`, on small song folders written here:
    the exported model is the shipped one cut (the same weights, read back from the file), its card says what was
    cut from what, and a run without the teacher keeps what the weights learnt from it: the teacher's labels in
    training_data and "personal and research use only" on the weights."""
    from lab import default_models
    from lab.widen import cut_cascade_second
    from stemdesk.io.model_store import load_estimator, read_card

    write_songs(tmp_path / "data")
    out = tmp_path / "out"
    default_models.main(
        ["stemdesk-4stem", "--continue-from", "--cut", "1000", "--minutes", "0", "--data", str(tmp_path / "data"),
         "--out", str(out), "--workdir", str(tmp_path / "runs")]
    )  # fmt: skip
    exported, card = load_estimator(read_card(out / "stemdesk-4stem"))
    shipped, shipped_card = load_estimator("stemdesk-4stem")
    expected, _ = cut_cascade_second(shipped.state_dict(), shipped_card.config, 1000.0)
    got = exported.state_dict()
    assert set(got) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name].float(), value.float(), rtol=0, atol=0, msg=name)
    assert card.config["second"]["config"]["max_freq"] == 1000.0
    cut = card.raw["training"]["cut"]
    assert cut["max_freq"] == 1000.0 and cut["from_max_freq"] == 2756.0
    assert cut["earlier"] == shipped_card.raw["training"]["cut"]
    assert card.raw["metrics"]["step"] == 0 and set(card.raw["metrics"]["validation_usdr_median_db"]) == set(SOURCES)
    assert "below 1000 Hz (training.refined, training.cut)" in card.raw["description"]
    assert card.raw["description"].endswith("for personal and research use only (training_data.research_only)")
    assert card.raw["training_data"]["teacher"] == shipped_card.raw["training_data"]["teacher"]
    assert (
        "htdemucs's labels of real music from Debian (drums and bass; training_data.teacher)" in card.raw["description"]
    )
    assert "personal and research use only" in card.raw["training_data"]["research_only"]
    assert "personal and research use only" in card.raw["licenses"]["weights"]
    assert not (tmp_path / "runs").exists()  # nothing trained: no checkpoint left to resume


def test_a_run_stops_at_a_step_fixed_before_it_and_that_checkpoint_is_exported_whatever_it_scores(tmp_path, capsys):
    """`--max-steps N` stops the run at step N; `--export-checkpoint` (with the run's options) validates that
    checkpoint and exports it although the trained weights need not beat the start, which a run exports only when
    they do. With no checkpoint there is nothing to export, and it says so."""
    from lab import default_models
    from lab.widen import cut_cascade_second
    from stemdesk.io.model_store import load_estimator, read_card

    write_songs(tmp_path / "data")
    run = ["stemdesk-4stem", "--continue-from", "--cut", "1000", "--data", str(tmp_path / "data")]
    run += ["--workdir", str(tmp_path / "runs"), "--lr", "1e-2"]
    with pytest.raises(SystemExit):
        default_models.main([*run[:2], *run[4:], "--out", str(tmp_path / "none"), "--export-checkpoint"])
    assert "no checkpoint" in capsys.readouterr().err
    default_models.main([*run, "--minutes", "10", "--max-steps", "2", "--out", str(tmp_path / "run")])
    log = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert log[-1]["done"] == 2
    # the checkpoint holds the cut correction: the run's options without --cut build another model, and it says so
    with pytest.raises(SystemExit):
        default_models.main([*run[:2], *run[4:], "--out", str(tmp_path / "fixed"), "--export-checkpoint"])
    said = capsys.readouterr().err
    assert "belongs to another model than this run builds" in said and "--cut" in said
    default_models.main([*run, "--out", str(tmp_path / "fixed"), "--export-checkpoint"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["exported"] == 2
    fixed, card = load_estimator(read_card(tmp_path / "fixed" / "stemdesk-4stem"))
    assert card.raw["metrics"]["step"] == 2 and "whatever its validation score" in card.raw["training"]["exported"]
    shipped, shipped_card = load_estimator("stemdesk-4stem")
    started, _ = cut_cascade_second(shipped.state_dict(), shipped_card.config, 1000.0)  # where the run started
    moved = [k for k, v in fixed.state_dict().items() if not torch.equal(v, started[k])]
    assert moved and all(k.startswith("second.") and not k.startswith("second.base.") for k in moved)  # trained
