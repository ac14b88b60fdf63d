"""The reproduction report (lab.reproduction) on results built here: each claim's verdict follows the
stated rule, the noise row raises the bar, and systems too close to doing nothing are named."""

from __future__ import annotations

import math

from lab.reproduction import CLAIMS, below_bar_note, judge, markdown, sign_test, vs_mixture

SONGS = [f"song{i}" for i in range(12)]
FOUR = ("vocals", "drums", "bass", "other")


def row(system: str, scores: list[float], stems=FOUR, **extra) -> dict:
    """A results row whose every stem scores ``scores[i]`` on song i."""
    per_song = {song: {s: value for s in stems} for song, value in zip(SONGS, scores)}
    median = sorted(scores)[len(scores) // 2]
    return {
        "system": system,
        "sources": list(stems),
        "usdr": {s: median for s in stems},
        "usdr_per_song": per_song,
        **extra,
    }


def results(*rows: dict) -> dict:
    return {"minutes": 4, "setup": {"threads": 1, "teacher": None}, "rows": list(rows)}


def claim(better: str, worse: str):
    return next(c for c in CLAIMS if (c.better, c.worse) == (better, worse))


BASE = [0.5 * i for i in range(12)]


def table_line(text: str, better: str, worse: str) -> str:
    return next(line for line in text.splitlines() if f"`{better}` vs `{worse}`" in line)


def test_sign_test_is_the_exact_binomial_tail():
    assert sign_test(12, 14) == (1 + 14 + 91) / 2**14 * 2
    assert sign_test(7, 14) == 1.0 and sign_test(0, 0) == 1.0


def test_verdicts_follow_the_rule_and_the_table_shows_the_measured_differences():
    rows = [
        row("oracle_mix", [1.0] * 12, ("vocals", "drums", "bass", "other", "accompaniment")),
        row("roma-dnn", BASE),
        row("roma-cnn1", [v + 1.0 for v in BASE]),  # higher on all 12 songs
        row("george-bilstm-l1", BASE),
        row("george-transformer-l1", [v - 0.4 for v in BASE]),  # lower on all 12
        row("lin-cnn-irm", BASE, ("vocals", "accompaniment")),
        row("lin-cnn", [v + (0.3 if i % 2 else -0.3) for i, v in enumerate(BASE)], ("vocals", "accompaniment")),
        row("pretet-unet", BASE, ("vocals", "accompaniment")),
        row("pretet-unet-augmented", [v + (0.05 if i % 3 else -0.05) for i, v in enumerate(BASE)], ("vocals",)),
    ]
    by_name = {r["system"]: r for r in rows}
    assert judge(claim("roma-cnn1", "roma-dnn"), by_name, None).verdict == "agrees"
    assert judge(claim("george-transformer-l1", "george-bilstm-l1"), by_name, None).verdict == "disagrees"
    assert judge(claim("lin-cnn", "lin-cnn-irm"), by_name, None).verdict == "inconclusive"  # 6 of 12 songs
    same = judge(claim("pretet-unet-augmented", "pretet-unet"), by_name, None)
    assert same.verdict == "agrees" and same.wins == 8  # a claim of no difference: 8 of 12 is not consistent
    assert judge(claim("george-bilstm-dual", "george-bilstm-l1"), by_name, None) is None  # not measured

    text = markdown(results(*rows), ["roma-cnn1", "roma-dnn"])
    line = table_line(text, "roma-cnn1", "roma-dnn")
    assert "| +1.00 | agrees |" in line and "higher on 12 of 12 songs" in line
    assert "| -0.40 | disagrees |" in table_line(text, "george-transformer-l1", "george-bilstm-l1")
    assert "| inconclusive |" in table_line(text, "lin-cnn", "lin-cnn-irm")
    assert "| not measured |" in table_line(text, "george-bilstm-dual", "george-bilstm-l1")
    assert "Run-to-run noise: not measured" in text


def test_a_difference_within_the_run_to_run_noise_is_inconclusive():
    rows = [
        row("roma-dnn", BASE),
        row("roma-cnn1", [v + 1.0 for v in BASE]),
        row("roma-dnn@seed1", [v + 1.5 for v in BASE]),  # the same recipe again, another seed: 1.5 dB apart
    ]
    text = markdown(results(*rows), ["roma-cnn1", "roma-dnn"])
    assert "`roma-dnn` trained twice (seeds 0 and 1, same budget) differs by 1.50 dB" in text
    line = table_line(text, "roma-cnn1", "roma-dnn")
    assert "| +1.00 | inconclusive |" in line and "within the noise (1.50 dB)" in line
    assert "--noise roma-dnn" in text


def test_systems_less_than_3_db_above_doing_nothing_are_listed_and_get_a_note():
    mix = row("oracle_mix", [1.0] * 12, ("vocals", "drums", "bass", "other", "accompaniment"))
    good = row("pretet-unet", [4.5] * 12, ("vocals", "accompaniment"), steps=300)
    poor = row("simpson-dk", [2.0] * 12, ("vocals", "accompaniment"), steps=120)
    assert vs_mixture(good, mix) == 3.5 and vs_mixture(poor, mix) == 1.0
    assert below_bar_note(good, mix, 4) is None
    note = below_bar_note(poor, mix, 4)
    assert "after 4 minutes of training (120 steps)" in note and "+1.00 dB over doing nothing" in note
    assert "median over 12 validation songs" in note and "silent" not in note
    mute = row("simpson-dk", [0.0] * 9 + [2.0] * 3, ("vocals", "accompaniment"), steps=120)  # 0 dB: silent estimate
    assert "Its vocal estimate is silent on 9 of the 12 songs" in below_bar_note(mute, mix, 4)
    again = row("simpson-dk@seed1", [2.0] * 12, ("vocals", "accompaniment"), steps=120)  # a noise run: not shipped
    text = markdown(results(mix, good, poor, again), ["simpson-dk", "pretet-unet"])
    assert "Less than +3 dB above doing nothing on vocals (their model cards say so): `simpson-dk` (+1.00 dB)." in text
    assert "| +1.00 | agrees |" in table_line(text, "simpson-dk", "oracle_mix")  # Deep Karaoke beats doing nothing
    quality = next(line for line in text.splitlines() if line.startswith("| pretet-unet |"))
    assert "| +3.50 |" in quality
    decayed = markdown({**results(mix, good, poor), "minutes": 36, "decay_minutes": 6}, ["simpson-dk"])
    assert "reproduction.py --minutes 36 --decay-minutes 6`" in decayed
    assert (
        "trained for 36 minutes of wall-clock time (one thread, pre-training included; over the last 6 the " in decayed
    )


def test_a_note_says_whether_a_longer_budget_helped_and_the_report_lists_vocals_by_budget():
    mix = row("oracle_mix", [1.0] * 12, ("vocals", "drums", "bass", "other", "accompaniment"))
    flat = {
        "last_quarter_change_percent": -1.2,
        "first_block_loss": 0.1,
        "last_quarter_loss": 0.06,
        "decay_from_step": 900,
    }
    stalled = row("roma-dnn", [2.4] * 12, steps=1500, loss_trend=flat)
    earlier = [{"minutes": 10, "decay_minutes": 0.0, "vocals": {"roma-dnn": 2.36, "roma-cnn1": 2.64}}]
    note = below_bar_note(stalled, mix, 36, earlier)
    assert "After 10 minutes its vocals scored 2.36 dB: the longer budget changed them by +0.04 dB." in note
    assert "Its training loss had flattened (-1.2 % over the last quarter of its steps before the decay)." in note
    assert "More training of this kind does not close the gap: at this size (at most 10 MB)" in note
    falling = row("roma-cnn1", [3.4] * 12, steps=900, loss_trend={**flat, "last_quarter_change_percent": -8.0})
    note = below_bar_note(falling, mix, 36, earlier)
    assert "changed them by +0.76 dB" in note and "had not flattened (-8.0 %" in note
    assert "does not close the gap" not in note and "At this budget this method does not separate" in note
    # 2.64 → 3.40 dB from 10 to 36 minutes: +0.41 dB per doubling; the bar (+3 dB over 1.0) is 0.60 dB further, about
    # 2^(0.60 / 0.41) = 2.7 times the budget
    per_doubling = 0.76 / math.log2(3.6)
    assert (
        f"If it kept gaining +{per_doubling:.2f} dB per doubling of the budget (its gain from 10 to 36 minutes)" in note
    )
    factor = 2 ** (0.6 / per_doubling)
    assert f"clearing the bar would take about {factor:.0f} times this budget ({factor * 36 / 60:.0f} hours" in note
    assert note.endswith("an extrapolation, not a measurement.")
    worse = row("roma-cnn1", [2.5] * 12, steps=900, loss_trend={**flat, "last_quarter_change_percent": -8.0})
    note = below_bar_note(worse, mix, 36, earlier)
    assert "Its vocals did not gain from the longer budget though its training loss was still falling." in note
    slow = row("roma-cnn1", [2.79] * 12, steps=900, loss_trend={**flat, "last_quarter_change_percent": -8.0})
    assert "more than a thousand times this budget" in below_bar_note(slow, mix, 36, earlier)
    # a gain beyond the run-to-run noise with a flat loss: the extrapolation, said to be optimistic
    gained = row("roma-dnn", [3.0] * 12, steps=1500, loss_trend=flat)
    note = below_bar_note(gained, mix, 36, earlier)
    assert "does not close the gap" not in note and "If it kept gaining +0.35 dB per doubling" in note
    assert note.endswith("an extrapolation, not a measurement, and an optimistic one, as its loss had flattened.")
    assert "After" not in below_bar_note(stalled, mix, 36)  # no earlier round: nothing to compare
    rounds = {**results(mix, stalled, falling), "minutes": 36, "decay_minutes": 6, "earlier": earlier}
    text = markdown(rounds, ["roma-cnn1", "roma-dnn"])
    assert "| system | 10 minutes | 36 minutes (the last 6 decaying) |" in text
    assert "| roma-dnn | 2.36 | 2.40 |" in text and "| roma-cnn1 | 2.64 | 3.40 |" in text


def test_a_warm_restart_round_says_so_in_its_command_and_its_text():
    mix = row("oracle_mix", [1.0] * 12, ("vocals", "drums", "bass", "other", "accompaniment"))
    system = row("roma-dnn", [2.9] * 12, steps=2600)
    earlier = [{"minutes": 36, "decay_minutes": 6.0, "vocals": {"roma-dnn": 2.39}}]
    restart = {"from_minutes": 36, "from_round": {"minutes": 36, "decay_minutes": 6.0}, "warmup_steps": 50}
    rounds = {**results(mix, system), "minutes": 72, "decay_minutes": 6, "earlier": earlier, "warm_restart": restart}
    text = markdown(rounds, ["roma-dnn"])
    assert "reproduction.py --minutes 72 --decay-minutes 6 --warm-restart`" in text
    assert (
        "trained for 72 minutes of wall-clock time (one thread, pre-training included: the 36 minutes (the last 6 "
        "decaying) of the round before, then 36 more from that round's model, a warm restart (a new optimiser, the "
        "learning rate back up over 50 steps); over the last 6 the learning rate fell linearly to 0)" in text
    )
    assert "the last round a warm restart from the round before's model" in text
    assert "| system | 36 minutes (the last 6 decaying) | 72 minutes (the last 6 decaying) |" in text
    assert "| roma-dnn | 2.39 | 2.90 |" in text
    other = markdown({**rounds, "warm_restart": {**restart, "warmup_steps": 20}}, ["roma-dnn"])
    assert "--warm-restart --warmup-steps 20`" in other and "back up over 20 steps" in other
    assert "warm restart" not in markdown({**rounds, "warm_restart": None}, ["roma-dnn"])


def test_a_claim_between_two_systems_that_do_not_separate_is_not_tested():
    """Two systems both below doing nothing (silent vocals, say) can be a hair apart on every song: that says nothing
    about augmentation or the network."""
    mix = row("oracle_mix", [1.0] * 12, ("vocals", "drums", "bass", "other", "accompaniment"))
    plain = row("pretet-unet", [0.0] * 12, ("vocals", "accompaniment"))
    augmented = row("pretet-unet-augmented", [0.1] * 12, ("vocals", "accompaniment"))
    verdict = judge(
        claim("pretet-unet-augmented", "pretet-unet"), {r["system"]: r for r in (mix, plain, augmented)}, 0.05
    )
    assert verdict.verdict == "not tested" and "neither separates vocals better than doing nothing" in verdict.why
    separating = row("pretet-unet-augmented", [3.0] * 12, ("vocals", "accompaniment"))  # one separates: judged
    rows = {r["system"]: r for r in (mix, plain, separating)}
    assert judge(claim("pretet-unet-augmented", "pretet-unet"), rows, 0.05).verdict == "disagrees"


def test_a_research_models_card_gets_its_scores_and_its_note_from_its_row(tmp_path, monkeypatch):
    """lab/benchmarks/reproduction.py writes a scored system's validation scores and its below-the-bar note into its
    model's card, so `stemdesk models`, the app's Models dock and the card's README show how well it separates."""
    from conftest import REPO
    from helpers import run, script_module, small_estimator

    from stemdesk.io.model_store import read_card, save_model

    benchmark = script_module(REPO / "lab" / "benchmarks" / "reproduction.py", "reproduction_benchmark")
    folder = tmp_path / "repro-mine"
    card = {"purpose": "research", "metrics": {"validation_usdr_median_db": {}, "step": 50, "training_seconds": 0}}
    save_model(folder, "repro-mine", small_estimator("band_mlp"), card)
    mix = row("oracle_mix", [1.0] * 12, (*FOUR, "accompaniment"))
    poor = row("repro-mine", [2.0] * 12, (*FOUR, "accompaniment"), steps=120)

    benchmark.write_note(folder, poor, mix, 4, [])
    written = read_card(folder).raw
    assert written["metrics"]["validation_usdr_median_db"] == dict.fromkeys(FOUR, 2.0)  # its stems only
    assert written["metrics"]["validation_usdr_per_song_db"]["song3"] == dict.fromkeys(FOUR, 2.0)
    assert written["metrics"]["step"] == 120  # the steps of its whole budget (the last run took 50)
    assert written["metrics"]["training_seconds"] == 0  # what else the card had stays
    assert written["reproduction"]["vocals_vs_nothing_db"] == 1.0
    readme = (folder / "README.md").read_text()
    assert "| 2.00 | 2.00 | 2.00 | 2.00 |" in readme and "at training step 120:" in readme
    assert "+1.00 dB over doing nothing" in readme

    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))
    code, out, _ = run("models", "--all")
    listed = out.split("repro-mine:", 1)[1].split("\n\n", 1)[0]
    assert code == 0 and "validation uSDR (dB): vocals 2.0, drums 2.0, bass 2.0, other 2.0" in listed
    assert "vocals +1.00 dB over doing nothing (a quarter of the mixture); below the bar" in listed

    good = row("repro-mine", [4.5] * 12, (*FOUR, "accompaniment"), steps=120)
    benchmark.write_note(folder, good, mix, 4, [])  # scored again: it clears the bar, so no note
    assert read_card(folder).raw["reproduction"]["note"] is None
    _, out, _ = run("models", "--all")
    listed = out.split("repro-mine:", 1)[1].split("\n\n", 1)[0]
    assert "vocals +3.50 dB over doing nothing (a quarter of the mixture)\n" in listed + "\n"
    assert "below the bar" not in listed
