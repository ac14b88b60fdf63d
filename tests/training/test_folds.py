"""A split model's no-harm rule on songs it never heard: the songs dealt into folds, the recipe trained without each
fold's songs and scored on them beside the baselines, the model installed only when it beats them on the median of
the folds, then trained on every song; the card says what each fold scored. On the synthetic sessions of
synthetic_sessions.py (three songs of tones: a lead, two backing voices, drums)."""

from __future__ import annotations

import json

import pytest
from helpers import run
from synthetic_sessions import sessions_fixture, write_session  # noqa: F401 (the sessions fixture)
from test_stemsets import VOCALS

from stemdesk.core.errors import StemDeskError
from stemdesk.training.split import fold_verdict, make_folds


def test_songs_are_dealt_into_folds_each_held_out_once():
    names = [f"song {i}" for i in range(7)]
    folds = make_folds(names, 3)
    assert folds == [["song 0", "song 3", "song 6"], ["song 1", "song 4"], ["song 2", "song 5"]]
    assert make_folds(names[:3], 5) == [["song 0"], ["song 1"], ["song 2"]]  # one song out at a time at most
    with pytest.raises(StemDeskError, match="at least 2 folds"):
        make_folds(names, 1)
    with pytest.raises(StemDeskError, match="two songs or more"):
        make_folds(names[:1], 2)


def test_the_verdict_is_the_median_of_the_folds_not_their_best():
    equal = {"lead": 4.0, "backing": 1.0}  # mean 2.5
    folds = [
        ({"lead": 10.0, "backing": 8.0}, {"equal parts": equal}),  # 9.0: won
        ({"lead": 9.0, "backing": 7.0}, {"equal parts": equal}),  # 8.0: won
        ({"lead": -5.0, "backing": 2.0}, {"equal parts": equal}),  # -1.5: lost
    ]
    verdict = fold_verdict(folds)
    assert verdict["beats_baselines"] and verdict["folds_won"] == 2
    assert verdict["model_mean_median_db"] == 8.0 and verdict["best_baseline_mean_median_db"] == 2.5
    assert verdict["model_median_db"] == {"lead": 9.0, "backing": 7.0}
    # a child silent in a fold's songs is not scored there: its median is over the folds that score it
    toms = fold_verdict(
        [
            ({"kick": 9.0, "toms": 3.0}, {"equal parts": {"kick": 1.0, "toms": 0.0}}),
            ({"kick": 10.0}, {"equal parts": {"kick": 2.0}}),  # no toms in this fold's songs
        ]
    )
    assert toms["model_median_db"] == {"kick": 9.5, "toms": 3.0}
    assert toms["baselines_median_db"]["equal parts"] == {"kick": 1.5, "toms": 0.0} and toms["folds_won"] == 2
    assert toms["model_mean_median_db"] == 8.0  # the means of 6 and 10
    # one great fold and two bad ones: the best fold does not carry it
    folds = [folds[0], folds[2], folds[2]]
    assert not fold_verdict(folds)["beats_baselines"]


def test_a_split_model_is_installed_from_folds_and_its_card_scores_each_song_by_a_model_that_never_heard_it(
    sessions, tmp_path
):
    mapping = tmp_path / "vocals.json"
    mapping.write_text(json.dumps(VOCALS))
    args = ["train", "--split", "vocals", "--mapping", mapping, "--data", sessions, "--out", "folded"]
    args += ["--steps", "20", "--batch", "4", "--set", "hidden=32", "--minutes", "6", "--threads", "1"]
    code, out, err = run(*args)
    assert code == 0, err
    for k, song in enumerate(["song 0", "song 1", "song 2"], 1):
        assert f"fold {k} of 3: training without {song}" in err
    assert "on songs it never heard: median mean uSDR" in err and "training the model on every song" in err
    assert "the median over 3 folds" in out
    from stemdesk.io.model_store import find_model
    from stemdesk.io.paths import runs_dir

    card = find_model("folded")
    data = card.raw["training_data"]
    assert data["train_songs"] == ["song 0", "song 1", "song 2"] and data["valid_songs"] == []
    unheard = card.raw["unheard"]
    assert list(unheard["folds"]) == ["song 0", "song 1", "song 2"] and "3 folds" in unheard["method"]
    record = json.loads((runs_dir() / "folded" / "folds.json").read_text())
    rows = record["rows"]
    assert [row["steps"] for row in rows.values()] == [20, 20, 20] and card.raw["metrics"]["step"] == 20
    per_song = card.raw["metrics"]["validation_usdr_per_song_db"]
    for song, row in rows.items():
        assert row["held_out"] == [song]
        # each song's score on the card is the one of the fold that trained without it
        assert per_song[song] == pytest.approx(row["songs"][song], abs=0.006)
        assert unheard["folds"][song]["model"] == row["model"]
    medians = card.raw["metrics"]["validation_usdr_median_db"]
    for child in ("lead", "backing"):
        values = sorted(row["model"][child] for row in rows.values())
        assert medians[child] == pytest.approx(values[1], abs=0.006)
        assert card.raw["split"]["baselines"]["equal parts"][child] == pytest.approx(
            sorted(row["baselines"]["equal parts"][child] for row in rows.values())[1], abs=0.006
        )
    assert unheard["beats_baselines"] and "## On songs it never heard" in (card.folder / "README.md").read_text()
    # the same command again trains no fold again and installs the same weights
    code, out, err = run(*args)
    assert code == 0, err
    assert "fold 1 of 3" not in err and find_model("folded").raw["weights_sha256"] == card.raw["weights_sha256"]


def test_a_split_that_loses_to_an_equal_split_on_the_next_song_is_not_installed(tmp_path):
    """Two songs whose lead and backing trade places: the low vibrato voice is the lead in one and a backing voice
    in the other. Whatever a model learns from one song splits the other backwards, which the folds see; nothing is
    installed, though each model splits the song it learnt from well."""
    root = tmp_path / "sessions"
    write_session(root / "straight", 0)
    swapped = root / "swapped"
    write_session(swapped, 0)
    lead, backing = swapped / "VOX LEAD.wav", swapped / "BGVOX HARMONY.wav"
    lead.rename(tmp_path / "lead.wav")
    backing.rename(lead)
    (tmp_path / "lead.wav").rename(backing)
    mapping = tmp_path / "vocals.json"
    mapping.write_text(json.dumps(VOCALS))
    args = ["train", "--split", "vocals", "--mapping", mapping, "--data", root, "--out", "backwards"]
    code, _, err = run(*args, "--steps", "20", "--batch", "4", "--set", "hidden=32", "--minutes", "6", "--threads", "1")
    assert code != 0
    assert "backwards was not installed: on songs it never heard (2 folds)" in err and "equal parts" in err, err
    assert "fold 2 of 2: training without swapped" in err and "training the model on every song" not in err
    from stemdesk.io.model_store import find_model
    from stemdesk.io.paths import runs_dir

    rows = json.loads((runs_dir() / "backwards" / "folds.json").read_text())["rows"]
    for row in rows.values():
        assert sum(row["model"].values()) < sum(row["baselines"]["equal parts"].values()) - 1, row
    with pytest.raises(StemDeskError):
        find_model("backwards")


def test_folds_that_cannot_be_made_are_refused(sessions, tmp_path):
    mapping = tmp_path / "vocals.json"
    mapping.write_text(json.dumps(VOCALS))
    base = ["train", "--split", "vocals", "--mapping", mapping, "--data", sessions, "--out", "x", "--steps", "1"]
    code, _, err = run(*base, "--folds", "4")
    assert code != 0 and "more folds than the 3 usable songs" in err
    code, _, err = run(*base, "--folds", "2", "--valid", "song 1")
    assert code != 0 and "give one" in err
    code, _, err = run("train", "--data", sessions, "--out", "y", "--folds", "3")
    assert code != 0 and "--folds" in err
