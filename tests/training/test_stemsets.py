"""Stem sets a user names: session tracks sorted into their stems, loops left out where they sound, every fault
reported in words, and a split model trained from them that beats its baselines or is not installed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run
from synthetic_sessions import RATE, sessions_fixture, tracks, write_session  # noqa: F401 (the sessions fixture)

from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators.crossover import Crossover
from stemdesk.core.separator import Separator
from stemdesk.training.split import no_harm
from stemdesk.training.stemsets import (
    check_session,
    discover_sessions,
    load_sessions,
    parse_stemset,
    read_stemset,
    unsplit_gate,
)
from stemdesk.training.train import usdr_loss_terms

DRUMKIT = {
    "split": "drums",
    "stems": {"kick": ["KICK"], "cymbals": ["HATS", "HH*"], "snare": ["SNARE*"]},
    "unsplit": ["*LOOP*"],
    "outside": ["VOX*", "BGVOX*", "SYNTH"],
}
VOCALS = {"split": "vocals", "stems": {"lead": ["VOX LEAD"], "backing": ["BGVOX*"]}, "outside": ["*"]}


def test_tracks_are_sorted_unsplit_first_then_each_stem_then_outside(sessions):
    stemset = parse_stemset({**DRUMKIT, "stems": {"kick": ["KICK", "*LOOP"], "cymbals": ["HATS"]}})
    song = discover_sessions(sessions, stemset)[0]
    assert [p.stem for p in song.children["kick"]] == ["KICK"]  # the loop matched unsplit first
    assert [p.stem for p in song.unsplit] == ["DRUM LOOP"]
    assert sorted(p.stem for p in song.outside) == ["BGVOX 1", "BGVOX HARMONY", "SYNTH", "VOX LEAD"]
    assert [p.stem for p in song.unmatched] == ["MYSTERY"]
    assert stemset.classify("kick.WAV") == ("child", "kick")  # case and extension do not matter


def test_the_seconds_an_unsplit_loop_sounds_are_silent_in_every_child(sessions):
    stemset = parse_stemset(DRUMKIT)
    song = discover_sessions(sessions, stemset)[0]
    report, made = check_session(song, stemset)
    assert report.ok and made is not None
    stems = made.audio().numpy()  # (children, 2, n)
    t = np.arange(stems.shape[-1]) / RATE
    inside = (t > 1.95) & (t < 3.05)  # the loop's second, the guard around it included
    assert np.abs(stems[..., inside]).max() == 0.0
    outside = (t < 1.8) | (t > 3.2)
    kick = tracks(0)["KICK"].T
    # elsewhere the kick is the kick (int16 storage: within one step)
    assert np.abs(stems[0][:, outside] - kick[:, outside]).max() <= 1 / 32768 + 1e-7
    assert report.facts["seconds_left_out"] == pytest.approx(1.2, abs=0.15)
    assert "snare" in report.facts["silent"]
    words = " ".join(report.warnings)
    assert "MYSTERY.wav" in words and "left out where unsplit tracks sound (DRUM LOOP)" in words


def test_the_gate_ramps_instead_of_clicking():
    loop = np.zeros((2, RATE * 2), np.float32)
    loop[:, RATE : RATE + RATE // 2] = 0.5
    gate = unsplit_gate(loop, RATE)
    assert gate[: int(0.8 * RATE)].min() == 1.0 and gate[RATE : RATE + RATE // 2].max() == 0.0
    step = np.abs(np.diff(gate)).max()
    assert 0 < step <= 1.0 / int(0.01 * RATE) + 1e-6  # a 10 ms ramp, never a jump


def test_check_data_reports_a_stem_set(sessions, tmp_path):
    mapping = tmp_path / "drumkit.json"
    mapping.write_text(json.dumps(DRUMKIT))
    code, out, _ = run("check-data", sessions, "--mapping", mapping)
    assert code == 0
    assert "Stem set: drums → kick, cymbals, snare." in out
    assert "no pattern matches MYSTERY.wav" in out
    assert "no usable song has snare: nothing teaches it" in out
    assert "unsplit: DRUM LOOP" in out and "outside drums: BGVOX 1, BGVOX HARMONY, SYNTH, VOX LEAD" in out
    code, out, _ = run("check-data", sessions, "--mapping", mapping, "--json")
    report = json.loads(out)
    assert report["never_sounding"] == ["snare"] and report["stemset"]["unsplit"] == ["*LOOP*"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"stems": {"lead": ["VOX*"]}}, "at least two stems"),
        ({"stems": {"Lead Vox": ["VOX*"], "b": ["B*"]}}, "cannot name a file"),
        ({"stems": {"lead": "VOX*", "b": ["B*"]}}, "needs a list of file-name patterns"),
        ({"split": "guitar", "stems": {"a": ["A"], "b": ["B"]}}, "splits one of mix, vocals"),
        ({"split": "vocals", "stems": {"vocals": ["A"], "b": ["B"]}}, 'cannot be called "vocals" too'),
        ({"stems": {"a": ["A"], "b": ["B"]}, "unsplt": []}, "keys StemDesk does not know: ['unsplt']"),
        ({"vocals": ["Lead*"]}, 'must be a JSON object with "stems"'),
    ],
)
def test_a_wrong_stem_set_says_what_is_wrong(data, words):
    with pytest.raises(StemDeskError) as caught:
        parse_stemset(data)
    assert words in str(caught.value)


def test_the_command_line_split_must_agree_with_the_file(tmp_path):
    path = tmp_path / "set.json"
    path.write_text(json.dumps(VOCALS))
    assert read_stemset(path).split == "vocals"
    with pytest.raises(StemDeskError, match='splits "vocals", but --split asks for "drums"'):
        read_stemset(path, "drums")
    path.write_text("{not json")
    with pytest.raises(StemDeskError, match="Cannot read the stem set"):
        read_stemset(path)


def test_a_song_without_any_of_the_stems_is_excluded_with_the_reason(tmp_path):
    root = tmp_path / "sessions"
    write_session(root / "no drums", 0, leave_out=("KICK", "HATS"))
    write_session(root / "drums", 1)
    report, loaded = load_sessions(discover_sessions(root, parse_stemset(DRUMKIT)), parse_stemset(DRUMKIT))
    assert report["excluded"] == {"no drums": ["no track of kick, cymbals, snare in this song"]}
    assert list(loaded) == ["drums"]


def test_the_crossover_gives_the_kick_the_lows_and_the_cymbals_the_highs():
    crossover = Crossover(
        ["kick", "snare", "cymbals"], {"n_fft": 2048, "hop": 512}, bands={"kick": [0, 150], "cymbals": [5000, None]}
    )
    t = torch.arange(RATE * 2) / RATE
    low, mid, high = (torch.sin(2 * torch.pi * f * t) * 0.3 for f in (60.0, 1000.0, 8000.0))
    audio = torch.stack([low + mid + high] * 2)
    stems = Separator(crossover)(audio, RATE).stems
    assert torch.allclose(stems.sum(0), audio, atol=1e-5)  # the null rule holds for a baseline too
    middle = slice(RATE // 2, -RATE // 2)
    for index, tone in enumerate((low, mid, high)):
        error = (stems[index, 0, middle] - tone[middle]).pow(2).mean() / tone[middle].pow(2).mean()
        assert error < 0.01, index


def test_the_capped_loss_stops_at_30_db_for_a_stem_alone():
    source = torch.randn(1, 2, 2, 4000)
    source[:, 1] = 0  # the second stem is silent in this example
    perfect = usdr_loss_terms(source, source, capped=True, silent=True)
    assert perfect.item() == pytest.approx(30.0, abs=0.05)
    assert usdr_loss_terms(source, source).item() > 60  # uncapped, a lone stem's term grows without end


def test_the_no_harm_rule_needs_the_mean_over_the_children_above_every_baseline():
    scored = {"equal parts": {"median": {"a": 3.0, "b": -3.0}}, "crossover": {"median": {"a": 5.0, "b": 1.0}}}
    assert no_harm({"a": 6.0, "b": 0.5}, scored)[0]
    beats, words = no_harm({"a": 6.0, "b": -0.5}, scored)
    assert not beats and "2.75 dB does not beat the baselines (equal parts 0.00 dB; crossover 3.00 dB)" in words


def test_a_split_model_trains_from_the_sessions_and_says_what_it_splits(sessions, tmp_path):
    mapping = tmp_path / "vocals.json"
    mapping.write_text(json.dumps(VOCALS))
    args = ["train", "--split", "vocals", "--mapping", mapping, "--data", sessions, "--out", "my-leadback"]
    code, out, err = run(*args, "--steps", "30", "--minutes", "3", "--threads", "1", "--valid", "song 2")
    assert code == 0, err
    assert "my-leadback: splits vocals (equal parts lead" in out
    assert "stemdesk separate SONG --split vocals=my-leadback" in out
    from stemdesk.io.model_store import find_model

    card = find_model("my-leadback")
    assert card.split_parent == "vocals" and card.sources == ["lead", "backing"]
    split = card.raw["split"]
    assert split["stemset"]["stems"] == VOCALS["stems"] and set(split["baselines"]) == {"equal parts"}
    assert card.raw["purpose"] == "split" and card.summary.startswith("Splits vocals into lead, backing.")
    code, out, _ = run("models")
    assert "Split models" in out and "my-leadback" in out.split("Split models")[1]
    assert "trained by stemdesk train --split vocals (recipe split-bilstm)" in out and "none: the estimator" not in out
    # the same run again resumes its checkpoint, and a --from of a model that splits something else is refused
    other = tmp_path / "drums.json"
    other.write_text(json.dumps(DRUMKIT))
    code, _, err = run(
        "train",
        "--split",
        "drums",
        "--mapping",
        other,
        "--data",
        sessions,
        "--out",
        "kit",
        "--from",
        "my-leadback",
        "--steps",
        "1",
    )
    assert code != 0 and "my-leadback splits vocals into lead, backing; this run splits drums" in err


def test_training_a_split_refuses_what_cannot_work(sessions, tmp_path):
    mapping = tmp_path / "vocals.json"
    mapping.write_text(json.dumps(VOCALS))
    code, _, err = run("train", "--split", "vocals", "--data", sessions, "--out", "x")
    assert code != 0 and "A split model needs --mapping" in err
    code, _, err = run("train", "--estimator", "open_unmix", "--mapping", mapping, "--data", sessions, "--out", "x")
    assert code != 0 and "is a stem set" in err and "--split PARENT" in err
    lonely = tmp_path / "lonely.json"
    lonely.write_text(json.dumps({**VOCALS, "stems": {"lead": ["VOX LEAD"], "choir": ["CHOIR*"]}}))
    code, _, err = run("train", "--split", "vocals", "--mapping", lonely, "--data", sessions, "--out", "x")
    assert code != 0 and "Only 1 of the stems (lead) sound in a usable song" in err


def test_a_mid_side_network_hears_the_centre_and_the_sides_apart():
    from stemdesk.core.estimators.mix import MixEstimator

    heard = []

    class Listening(MixEstimator):
        def forward(self, mag):
            heard.append(mag)
            return super().forward(mag)

    t = torch.arange(RATE) / RATE
    centre, wide = torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 2000 * t)
    audio = torch.stack([centre + wide, centre - wide])  # the 2 kHz tone only in the side
    stft = {"n_fft": 2048, "hop": 512, "sample_rate": RATE}
    for midside in (False, True):
        stems = Separator(Listening(["lead", "backing"], stft, midside=midside))(audio, RATE).stems
        assert torch.allclose(stems.sum(0), audio, atol=1e-5)
    left_right, mid_side = heard
    bin_440, bin_2k = round(440 * 2048 / RATE), round(2000 * 2048 / RATE)
    assert (left_right[0, :, bin_2k].mean(-1) > 0.5 * left_right[0, :, bin_440].mean(-1)).all()  # both hear both
    assert mid_side[0, 1, bin_440].mean() < 1e-3 * mid_side[0, 0, bin_440].mean()  # the centre has no side
    assert mid_side[0, 0, bin_2k].mean() < 1e-3 * mid_side[0, 1, bin_2k].mean()  # the wide tone has no mid
