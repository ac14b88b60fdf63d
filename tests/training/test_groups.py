"""Group tracks of a stem set: a loop known to hold kick and snare teaches their sum, the other children silence,
check-data counts the seconds taught exactly and in groups, and what cannot be a group is refused by name."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import run

from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators.mix import MixEstimator
from stemdesk.core.stft import STFT
from stemdesk.training.data import Sampler
from stemdesk.training.split import gather_split
from stemdesk.training.stemsets import check_session, discover_sessions, load_sessions, parse_stemset
from stemdesk.training.train import (
    TrainConfig,
    Trainer,
    group_sounds,
    merge_blocks,
    objective_loss,
    usdr_loss_terms,
)
from stemdesk.training.validation import Validator

RATE = 16000
SECONDS = 8.0
CHILDREN = ("kick", "snare", "cymbals")
KIT = {
    "split": "drums",
    "stems": {"kick": ["KICK"], "snare": ["SNARE"], "cymbals": ["HATS"]},
    "groups": {"K & SN": ["kick", "snare"]},
    "outside": ["*"],
}


def hits(t: np.ndarray, every: float, offset: float, decay: float) -> np.ndarray:
    """An envelope of hits every ``every`` seconds from ``offset``, each decaying at ``decay`` per second."""
    since = (t - offset) % every
    return np.where(t >= offset, np.exp(-since * decay), 0.0)


def kit(seed: int, t: np.ndarray) -> dict[str, np.ndarray]:
    """A kick (a low sine), a snare (mid-band noise) and hats (high noise), each a pattern of hits."""
    rng = np.random.default_rng(seed)
    kick = 0.5 * np.sin(2 * np.pi * (55 + 5 * seed) * t) * hits(t, 0.5, 0.0, 25)
    snare = np.convolve(rng.standard_normal(t.shape), np.ones(4) / 4, mode="same")
    snare = 0.3 * (snare - np.convolve(snare, np.ones(16) / 16, mode="same")) * hits(t, 0.5, 0.25, 30)
    hats = 0.1 * np.diff(rng.standard_normal(t.size + 1)) * hits(t, 0.125, 0.0, 80)
    return {"KICK": kick, "SNARE": snare, "HATS": hats}


def tracks(seed: int, loop_gain: float = 1.0) -> dict[str, np.ndarray]:
    """A song's session (length, 2): kick, snare and hats play alone for the first 3 s, then nothing until a
    "K & SN" loop (another kick and snare) plays from 4 s to the end; a synth (outside) plays throughout."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    first = (t < 3.0).astype(float)
    alone = {name: x * first for name, x in kit(seed, t).items()}
    loop_kit = kit(seed + 10, t)
    loop = (loop_kit["KICK"] + loop_kit["SNARE"]) * (t >= 4.0) * loop_gain
    made = {**alone, "K & SN": loop, "SYNTH": 0.1 * np.sin(2 * np.pi * 330 * t)}
    return {name: np.stack([x, 0.9 * x], axis=1).astype(np.float32) for name, x in made.items()}


def write_session(folder, seed: int, loop_gain: float = 1.0, silent_loop: bool = False) -> None:
    folder.mkdir(parents=True)
    for name, audio in tracks(seed, loop_gain).items():
        if name == "K & SN" and silent_loop:
            audio = np.zeros_like(audio)
        sf.write(str(folder / f"{name}.wav"), audio, RATE, subtype="FLOAT")


@pytest.fixture
def sessions(tmp_path):
    root = tmp_path / "sessions"
    for seed in range(3):
        write_session(root / f"song {seed}", seed)
    return root


def test_a_group_track_teaches_its_seconds_and_check_data_counts_them(sessions, tmp_path):
    stemset = parse_stemset(KIT)
    song = discover_sessions(sessions, stemset)[0]
    assert [p.stem for p in song.groups["K & SN"]] == ["K & SN"] and not song.unsplit
    report, made = check_session(song, stemset)
    assert report.ok and made is not None
    # the loop's seconds are not silenced (as an unsplit loop's are): the children keep their own tracks, and the
    # loop is the song's group row, part of the mixture
    loop = tracks(0)["K & SN"].T
    assert np.abs(made.group_audio(1)[0].numpy() - loop).max() <= 1 / 32768 + 1e-7
    assert made.stems.shape[0] == 3 and made.active is not None and made.active.shape[0] == 4
    assert report.facts["taught_seconds"] == {
        "kick": {"exactly": 3, "in_groups": 4, "left_out": 0},
        "snare": {"exactly": 3, "in_groups": 4, "left_out": 0},
        "cymbals": {"exactly": 3, "in_groups": 0, "left_out": 0},
    }
    mapping = tmp_path / "kit.json"
    mapping.write_text(json.dumps(KIT))
    code, out, _ = run("check-data", sessions, "--mapping", mapping)
    assert code == 0, out
    assert "group kick + snare (K & SN): K & SN (" in out and " dB against its stems)" in out
    assert "kick 3 / 4 / 0; snare 3 / 4 / 0; cymbals 3 / 0 / 0" in out
    table = out.split("Seconds taught")[1]
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[3:6]}
    assert rows == {"kick": ["9", "12", "0"], "snare": ["9", "12", "0"], "cymbals": ["9", "0", "0"]}
    # the same track under unsplit is left out instead: unsplit is matched first
    unsplit = parse_stemset({**KIT, "unsplit": ["K & SN"]})
    song = discover_sessions(sessions, unsplit)[0]
    assert not song.groups and [p.stem for p in song.unsplit] == ["K & SN"]
    report, _ = check_session(song, unsplit)
    assert report.facts["taught_seconds"]["kick"] == {"exactly": 3, "in_groups": 0, "left_out": 0}
    assert report.facts["seconds_left_out"] == pytest.approx(4.1, abs=0.1)


@pytest.mark.parametrize(
    ("groups", "words"),
    [
        ({"K & SN": ["kick", "clap"]}, "the group \"K & SN\" names 'clap', which is not a stem of this set"),
        ({"K & SN": ["kick"]}, 'the group "K & SN" holds one stem (kick): that is a track of that stem'),
        ({"K & SN": ["kick", "kick"]}, 'the group "K & SN" names a stem twice'),
        ({"K & SN": "kick, snare"}, 'the group "K & SN" must list the stems its tracks hold'),
    ],
)
def test_a_group_that_cannot_be_one_is_refused_by_name(groups, words):
    with pytest.raises(StemDeskError) as caught:
        parse_stemset({**KIT, "groups": groups})
    assert words in str(caught.value)


def test_a_track_two_group_patterns_match_is_refused_by_name(sessions, tmp_path):
    stemset = parse_stemset({**KIT, "groups": {"K & SN": ["kick", "snare"], "K *": ["kick", "cymbals"]}})
    with pytest.raises(StemDeskError) as caught:
        discover_sessions(sessions, stemset)
    words = str(caught.value)
    assert 'The track "K & SN.wav" matches 2 group patterns' in words and '"K *": kick + cymbals' in words
    mapping = tmp_path / "kit.json"
    mapping.write_text(json.dumps(stemset.as_dict()))
    code, _, err = run("check-data", sessions, "--mapping", mapping)
    assert code != 0 and 'The track "K & SN.wav" matches 2 group patterns' in err


def test_a_silent_or_too_loud_group_track_excludes_its_song_by_name(tmp_path):
    root = tmp_path / "sessions"
    write_session(root / "silent", 0, silent_loop=True)
    write_session(root / "bounced", 1, loop_gain=4.0)  # 12 dB hotter than its kick and snare could make it
    write_session(root / "fine", 2, loop_gain=1.4)  # a loop mixed 3 dB hotter is taken
    stemset = parse_stemset(KIT)
    report, loaded = load_sessions(discover_sessions(root, stemset), stemset)
    assert list(loaded) == ["fine"]
    (silent,) = report["excluded"]["silent"]
    assert 'the group track "K & SN" (kick + snare) never sounds' in silent
    (loud,) = report["excluded"]["bounced"]
    assert 'the group track "K & SN" (kick + snare) is louder than its stems could make it' in loud
    over = float(loud.split(" dB above")[0].rsplit(", ", 1)[1])
    assert 6.0 < over < 12.5


def test_blocks_merge_by_the_groups_that_sound():
    length = 4
    exact = torch.arange(3 * length, dtype=torch.float32).reshape(1, 3, 1, length).repeat(3, 1, 1, 1)
    estimates = -exact
    groups = torch.stack([torch.full((1, length), 100.0), torch.full((1, length), 1000.0)])[None].repeat(3, 1, 1, 1)
    kinds = [(0, 1), (1, 2)]  # kick + snare; snare + cymbals
    sounding = torch.tensor([[False, False], [True, False], [True, True]])
    merged, targets = merge_blocks(estimates, exact, groups, kinds, sounding)
    k, s, c = exact[0, 0], exact[0, 1], exact[0, 2]
    # no group sounds: every source is its own block, the exact targets
    assert torch.equal(targets[0], exact[0]) and torch.equal(merged[0], estimates[0])
    # kick + snare sounds: one block for them, its target their tracks and the loop; the cymbals alone
    assert torch.equal(targets[1, 0], k + s + 100) and torch.equal(targets[1, 1], k + s + 100)
    assert torch.equal(targets[1, 2], c) and torch.equal(merged[1, 0], -(k + s))
    # both sound: they share the snare, so all three are one block with both loops
    for i in range(3):
        assert torch.equal(targets[2, i], k + s + c + 1100) and torch.equal(merged[2, i], -(k + s + c))
    # the blocks' targets add up to the mixture: each block counted once
    mixture = exact.sum(1) + (groups * sounding[..., None, None]).sum(1)
    assert torch.equal(targets[1, 1] + targets[1, 2], mixture[1])


def test_a_loop_teaches_the_sum_of_its_children_and_silence_to_the_others():
    """With the loop as kick + snare, any split of it between them is right and leaking it into the cymbals is
    wrong; with the loop as nobody's target (no groups) whichever child takes it is punished."""
    torch.manual_seed(0)
    length = RATE
    exact = torch.zeros(1, 3, 2, length)
    exact[:, 2] = 0.05 * torch.randn(2, length)  # hats
    loop = 0.3 * torch.randn(1, 1, 2, length)
    kinds = [(0, 1)]
    sounding = group_sounds(loop, RATE)
    assert sounding.tolist() == [[True]]
    mixture = exact.sum(1) + loop.sum(1)

    def loss(estimates: torch.Tensor, groups: bool) -> float:
        if not groups:
            return float(-usdr_loss_terms(estimates, exact, silent=True, capped=True, mixture=mixture))
        merged, targets = merge_blocks(estimates, exact, loop, kinds, sounding)
        return float(-usdr_loss_terms(merged, targets, silent=True, capped=True, mixture=mixture))

    to_kick = torch.stack([loop[0, 0], torch.zeros(2, length), exact[0, 2]])[None]
    shared = torch.stack([0.3 * loop[0, 0], 0.7 * loop[0, 0], exact[0, 2]])[None]
    to_cymbals = torch.stack([torch.zeros(2, length), torch.zeros(2, length), exact[0, 2] + loop[0, 0]])[None]
    assert loss(to_kick, True) == pytest.approx(loss(shared, True), abs=1e-4) == pytest.approx(-30.0, abs=0.1)
    assert loss(to_cymbals, True) > loss(to_kick, True) + 20
    assert loss(to_kick, False) > loss(to_kick, True) + 5  # without the group the loop was nobody's
    # a tail below the gate's level (−60 dBFS in every 50 ms frame) does not merge its children
    assert not group_sounds(loop * 1e-4, RATE).item()


def small_config(**extra) -> TrainConfig:
    config = {"sources": list(CHILDREN), "stft": {"n_fft": 512, "hop": 128}, "hidden": 16, "layers": 1}
    return TrainConfig(
        estimator="open_unmix",
        config={**config, "objective": "usdr_capped"},
        excerpt_seconds=2.0,
        batch=4,
        lr=3e-3,
        validate_every=100,
        minutes=5,
        max_steps=3,
        data_sources=CHILDREN,
        remix=0.0,
        **extra,
    )


def test_the_loss_with_groups_is_the_exact_loss_where_no_group_sounds():
    from stemdesk.core.estimators import build_estimator

    config = small_config()
    estimator = build_estimator(config.estimator, {**config.config, "stft": {"n_fft": 512, "hop": 128}})
    stft = STFT(estimator.stft_config.at_rate(RATE))
    torch.manual_seed(1)
    children = 0.1 * torch.randn(2, 3, 2, RATE)
    silent_group = torch.zeros(2, 1, 2, RATE)
    plain = objective_loss(estimator, stft, children)
    assert torch.allclose(
        objective_loss(estimator, stft, torch.cat([children, silent_group], 1), groups=[(0, 1)]), plain
    )
    loop = 0.2 * torch.randn(2, 1, 2, RATE)
    with_loop = objective_loss(estimator, stft, torch.cat([children, loop], 1), groups=[(0, 1)])
    assert torch.isfinite(with_loop) and not torch.allclose(with_loop, plain)
    with pytest.raises(ValueError, match="group tracks train with a uSDR objective"):
        objective_loss(estimator, stft, torch.cat([children, loop], 1), "magnitude_l1", groups=[(0, 1)])


def test_a_few_training_steps_with_groups_teach_the_loop_and_score_it(sessions, tmp_path):
    stemset = parse_stemset(KIT)
    data = gather_split([sessions], stemset, ["song 2"])
    train = [data.loaded[n] for n in data.train]
    valid = [data.loaded[n] for n in data.valid]
    # the examples hold the loop in their mixture where it sounds (drawn as mixed)
    sampler = Sampler(train, 2 * RATE, remix=0.0, groups=[(0, 1)])
    batch = sampler.batch(16)
    assert batch.shape[1] == 4 and any(bool(example[3].abs().max() > 0.05) for example in batch)
    losses = {}
    for label, groups in (("groups", stemset.group_kinds), ("none", ())):
        trainer = Trainer(small_config(), train, valid, tmp_path / label, groups=groups)
        result = trainer.run()
        assert result["step"] == 3
        losses[label] = [h["loss"] for h in result["history"]]
        assert math.isfinite(losses[label][0])
        if groups:
            assert set(result["history"][-1]["valid_groups"]) == {"kick+snare"}
            assert set(result["history"][-1]["valid_usdr"]) == set(CHILDREN)
        else:
            assert "valid_groups" not in result["history"][-1]
    # the same songs and seed: only the loop's seconds, now taught, make the losses differ
    assert losses["groups"] != losses["none"]


def test_validation_scores_children_off_the_loop_and_the_group_on_it(sessions):
    """The equal split gives each of three children a third of the drums: on the loop's seconds, where only the
    loop sounds, kick + snare get two thirds of it, 20·log10(3) dB."""
    stemset = parse_stemset(KIT)
    song = discover_sessions(sessions, stemset)[0]
    _, made = check_session(song, stemset)
    assert made is not None
    equal = MixEstimator(list(CHILDREN), {"n_fft": 512, "hop": 128})
    scored = Validator([made], list(CHILDREN), groups=[(0, 1)]).score(equal)
    assert scored["groups"]["median"]["kick+snare"] == pytest.approx(20 * math.log10(3), abs=0.05)
    without = Validator([made], list(CHILDREN)).score(equal)
    assert "groups" not in without
    # the children are scored off the loop, where the mixture is what it is without the loop: the same scores (a
    # score over the loop's seconds too would count the third of the loop each child gets there)
    for child in CHILDREN:
        assert scored["median"][child] == pytest.approx(without["median"][child], abs=0.05), child


def test_the_card_says_the_seconds_taught_exactly_and_in_groups(sessions):
    from stemdesk.training.split import score_baselines, split_facts

    stemset = parse_stemset(KIT)
    data = gather_split([sessions], stemset, ["song 2"])
    scored = score_baselines(stemset.children, {"n_fft": 512, "hop": 128}, [data.loaded["song 2"]], stemset.group_kinds)
    facts = split_facts(data, scored)
    # the two training songs only: three seconds alone and four in the loop each
    assert facts["seconds_taught"]["kick"] == {"exactly": 6, "in_groups": 8, "left_out": 0}
    assert facts["seconds_taught"]["cymbals"] == {"exactly": 6, "in_groups": 0, "left_out": 0}
    assert facts["stemset"]["groups"] == {"K & SN": ["kick", "snare"]}
    assert facts["baselines_groups"]["equal parts"]["kick+snare"] == pytest.approx(20 * math.log10(3), abs=0.05)


def test_a_split_cards_readme_says_what_each_child_was_taught_from_and_the_groups_scores():
    """The README a card renders shows the seconds each child was taught exactly and in groups, and each group's
    validation score beside the baselines'; a card without groups shows neither."""
    from stemdesk.training.model_card import render

    card = {
        "id": "kit", "estimator": "open_unmix", "sources": ["kick", "snare"], "sample_rate": 44100,
        "config": {"stft": {"n_fft": 2048, "hop": 1024}}, "weights_sha256": "0" * 64,
        "split": {
            "parent": "drums", "children": ["kick", "snare"],
            "seconds_taught": {"kick": {"exactly": 145, "in_groups": 207, "left_out": 13},
                               "snare": {"exactly": 18, "in_groups": 207, "left_out": 2}},
            "baselines_groups": {"equal parts": {"kick+snare": 7.96}},
        },
        "metrics": {"validation_group_usdr_median_db": {"kick+snare": 54.7}},
    }  # fmt: skip
    text = render(card)
    assert "| snare | 18 | 207 | 2 |" in text and "| kick+snare | 54.70 | 7.96 |" in text
    del card["split"]["seconds_taught"], card["metrics"]["validation_group_usdr_median_db"]
    assert "in groups" not in render(card) and "kick+snare" not in render(card)
