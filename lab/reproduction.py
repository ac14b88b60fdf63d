"""The reproduction report: the results section of lab/notes/reproduction.md, written from the rows
lab/benchmarks/reproduction.py measured (lab/benchmarks/results/reproduction.json), so running the benchmark again writes it
again.

Besides the table of systems it checks each paper's central claim (`CLAIMS`) by one stated rule, on the validation
songs paired: per song, the claimed winner's uSDR minus the other's (the mean over the claim's stems), then

- "agrees" when the claimed winner is higher on enough songs that a two-sided sign test gives p < 0.05 and the
  median difference is larger than the run-to-run noise (when measured: the same recipe trained with two seeds);
- "disagrees" when the other system wins by the same rule;
- "inconclusive" otherwise: the difference is not consistent over songs, or is within the noise;
- "not tested" when neither system's vocals do better than doing nothing (the MIX oracle): two systems that do not
  separate say nothing about a claim, even when one is consistently a hair above the other.

A claim that two systems do not differ (``same``) agrees when neither wins by that rule, and disagrees when one does.
A sign test over songs says whether a difference holds across songs; only the noise row says whether it would
survive training again, so without one a consistent difference between two single runs may still be a seed's luck.

Every system's vocals are also compared with doing nothing (`BASELINE`, the MIX oracle: a quarter of the mixture
as the vocal estimate); a system less than `MARGIN_DB` above it gets a note in its model card (`below_bar_note`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stemdesk.training.metrics import sign_test

FOUR = ("vocals", "drums", "bass", "other")
BASELINE = "oracle_mix"
MARGIN_DB = 3.0  # how far above doing nothing a separator's vocals should be
P_VALUE = 0.05
SEED_MARK = "@seed"  # a row "RECIPE@seed1" is RECIPE trained again with seed 1: the run-to-run noise


@dataclass(frozen=True)
class Claim:
    """A paper's claim as two systems compared: ``better`` should beat ``worse`` on ``stems`` (per song, the mean
    of their uSDR), or, with ``same``, the two should not differ."""

    paper: str
    claim: str
    better: str
    worse: str
    stems: tuple[str, ...] = ("vocals",)
    same: bool = False


# The claims of issue #26, one comparison each; the systems are the recipes of stemdesk/training/recipes.py.
CLAIMS = (
    Claim("Simpson et al. 2015", "Deep Karaoke's vocal masks beat doing nothing", "simpson-dk", BASELINE),
    Claim(
        "Roma et al. 2018",
        "convolutions (cnn1, ratio masks) beat the fully connected baseline",
        "roma-cnn1",
        "roma-dnn",
        FOUR,
    ),
    Claim(
        "Roma et al. 2018",
        "convolutions (cnn2, binary masks) beat the fully connected baseline",
        "roma-cnn2",
        "roma-dnn",
        FOUR,
    ),
    Claim(
        "Lin et al. 2018", "ideal binary masks with cross-entropy beat ratio masks with MSE", "lin-cnn", "lin-cnn-irm"
    ),
    Claim(
        "George et al.", "the transformer beats the BiLSTM (L1 loss)", "george-transformer-l1", "george-bilstm-l1", FOUR
    ),
    Claim(
        "George et al.",
        "the transformer beats the BiLSTM (dual loss)",
        "george-transformer-dual",
        "george-bilstm-dual",
        FOUR,
    ),
    Claim("George et al.", "L1 beats MSE (BiLSTM)", "george-bilstm-l1", "george-bilstm-mse", FOUR),
    Claim("George et al.", "the dual loss beats L1 (BiLSTM)", "george-bilstm-dual", "george-bilstm-l1", FOUR),
    Claim("George et al.", "the dual loss beats MSE (BiLSTM)", "george-bilstm-dual", "george-bilstm-mse", FOUR),
    Claim(
        "Prétet et al. 2018", "augmentation makes little difference", "pretet-unet-augmented", "pretet-unet", same=True
    ),
    Claim(
        "Prétet et al. 2018",
        "post-processing (energy gate, binarised masks, Wiener) helps",
        "pretet-unet-post",
        "pretet-unet",
    ),
    Claim("Prétet et al. 2018", "the DenseNet beats the U-Net", "pretet-densenet", "pretet-unet"),
    Claim("Prétet et al. 2018", "the multi-band MMDenseNet beats the DenseNet", "pretet-mmdensenet", "pretet-densenet"),
)


def paired(a: Mapping[str, Any], b: Mapping[str, Any], stems: Sequence[str]) -> list[float]:
    """Per validation song that both rows scored, ``a``'s uSDR minus ``b``'s, each the mean over those of
    ``stems`` both scored on that song (a stem silent in a song is not scored)."""
    out = []
    theirs = b.get("usdr_per_song", {})
    for song, ours in a.get("usdr_per_song", {}).items():
        other = theirs.get(song, {})
        common = [s for s in stems if s in ours and s in other]
        if common:
            out.append(sum(ours[s] - other[s] for s in common) / len(common))
    return out


@dataclass(frozen=True)
class Verdict:
    """A claim measured: the median per-song difference (claimed winner minus the other, dB), the songs won of the
    songs that differ, the sign test's p, and the verdict with its reason."""

    difference: float
    wins: int
    songs: int
    p: float
    verdict: str
    why: str


def judge(claim: Claim, rows: Mapping[str, Mapping[str, Any]], noise: float | None) -> Verdict | None:
    """The verdict on ``claim`` from ``rows`` (by system name) by the rule of this module, with ``noise`` the
    run-to-run noise in dB (None: not measured); None when a system was not measured."""
    if claim.better not in rows or claim.worse not in rows:
        return None
    differences = paired(rows[claim.better], rows[claim.worse], claim.stems)
    if not differences:
        return None
    median = statistics.median(differences)
    wins = sum(d > 0 for d in differences)
    songs = sum(d != 0 for d in differences)
    baseline = rows.get(BASELINE)
    margins = [vs_mixture(rows[name], baseline) for name in (claim.better, claim.worse) if name != BASELINE]
    if baseline is not None and len(margins) == 2 and all(m is not None and m <= 0 for m in margins):
        return Verdict(
            round(median, 2),
            wins,
            songs,
            1.0,
            "not tested",
            f"neither separates vocals better than doing nothing ({claim.better} {margins[0]:+.2f} dB, "
            f"{claim.worse} {margins[1]:+.2f} dB): comparing them says nothing about the claim",
        )
    p = sign_test(wins, songs)
    floor = noise or 0.0
    consistent = p < P_VALUE and abs(median) > floor
    counted = f"higher on {wins} of {songs} songs (sign test p = {p:.2g})"
    if not consistent:
        reason = "not consistent over songs" if p >= P_VALUE else f"within the noise ({floor:.2f} dB)"
    else:
        reason = "consistent over songs" + (f" and beyond the noise ({floor:.2f} dB)" if noise is not None else "")
    if claim.same:
        verdict = "disagrees" if consistent else "agrees"
    elif consistent:
        verdict = "agrees" if median > 0 else "disagrees"
    else:
        verdict = "inconclusive"
    return Verdict(round(median, 2), wins, songs, p, verdict, f"{claim.better} {counted}: {reason}")


def noise_of(rows: Mapping[str, Mapping[str, Any]]) -> tuple[str, float, int] | None:
    """The run-to-run noise: for a row "RECIPE@seedN" beside RECIPE's, (RECIPE, the absolute median per-song
    difference over its stems in dB, songs compared); None when no recipe was trained twice."""
    for name, row in rows.items():
        if SEED_MARK in name and name.split(SEED_MARK)[0] in rows:
            recipe = name.split(SEED_MARK)[0]
            differences = paired(rows[recipe], row, row.get("sources", FOUR))
            if differences:
                return recipe, round(abs(statistics.median(differences)), 2), len(differences)
    return None


def vs_mixture(row: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> float | None:
    """Median over validation songs of the row's vocals uSDR minus the baseline's (doing nothing), dB."""
    if baseline is None:
        return None
    differences = paired(row, baseline, ("vocals",))
    return round(statistics.median(differences), 2) if differences else None


def card_metrics(row: Mapping[str, Any], sources: Sequence[str]) -> dict[str, Any]:
    """The validation scores a research model's card shows (`stemdesk models`, the app's Models dock, its README)
    from its row: the median uSDR of each stem it separates, and each song's, after its training's steps (over every
    run, as its budget counts them)."""
    return {
        **({"step": row["steps"]} if row.get("steps") else {}),
        "validation_usdr_median_db": {s: row["usdr"][s] for s in sources if s in row.get("usdr", {})},
        "validation_usdr_per_song_db": {
            song: {s: scores[s] for s in sources if s in scores}
            for song, scores in row.get("usdr_per_song", {}).items()
        },
    }


# The warm-up of a warm restart, in steps, unless the round says otherwise (lab/benchmarks/reproduction.py --warmup-steps).
WARMUP_STEPS = 50
# A loss that fell less than this over the last quarter of its steps (before any final decay) had flattened.
FLAT_PERCENT = -5.0
# Vocals that moved less than this between two budgets did not gain from the longer one (the same recipe trained
# again with another seed, or warm-restarted, moved its vocals median by 0.07 and 0.10 dB).
NO_GAIN_DB = 0.1


def budget_words(round_: Mapping[str, Any]) -> str:
    """A round's budget in words: "10 minutes", "36 minutes (the last 6 decaying)"."""
    decay = round_.get("decay_minutes") or 0
    return f"{round_['minutes']:g} minutes" + (f" (the last {decay:g} decaying)" if decay else "")


def below_bar_note(
    row: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    minutes: float,
    earlier: Sequence[Mapping[str, Any]] = (),
) -> str | None:
    """The line a model card gets when the system's vocals are less than MARGIN_DB above doing nothing: what was
    measured, on which songs, after what training, and whether more training of the same kind helped: the loss
    trend, and the system's vocals in ``earlier`` rounds (the results file's summaries of shorter budgets of the
    same run, oldest first). None when it clears the bar (or was not compared)."""
    margin = vs_mixture(row, baseline)
    if margin is None or margin >= MARGIN_DB:
        return None
    songs = len(paired(row, baseline or {}, ("vocals",)))
    steps = row.get("steps")
    # uSDR is exactly 0 dB where the estimate is silent (10 log10 of |s|² / |s − 0|²)
    vocal_songs = [scores["vocals"] for scores in row.get("usdr_per_song", {}).values() if "vocals" in scores]
    silent = sum(value == 0.0 for value in vocal_songs)
    why = (
        f" Its vocal estimate is silent on {silent} of the {len(vocal_songs)} songs: no bin's vocal mask passes "
        "the threshold separation applies, so the mixture goes to the other stems whole."
        if silent
        else ""
    )
    vocals = row["usdr"].get("vocals", float("nan"))
    before = [(r, r["vocals"][row["system"]]) for r in earlier if row["system"] in r.get("vocals", {})]
    history = "".join(
        f" After {budget_words(r)} its vocals scored {value:.2f} dB: the longer budget changed them by "
        f"{vocals - value:+.2f} dB."
        for r, value in before[-1:]
    )
    trend = row.get("loss_trend") or {}
    change = trend.get("last_quarter_change_percent")
    flat = change is not None and change > FLAT_PERCENT
    if change is not None:
        history += (
            f" Its training loss had {'flattened' if flat else 'not flattened'} ({change:+.1f} % over the last "
            f"quarter of its steps{' before the decay' if trend.get('decay_from_step') is not None else ''})."
        )
    gain = vocals - before[-1][1] if before else None
    if gain is not None and gain < NO_GAIN_DB and flat:
        verdict = (
            " More training of this kind does not close the gap: at this size (at most 10 MB) and on these songs the "
            "method does not separate vocals usefully."
        )
    else:
        verdict = " At this budget this method does not separate vocals usefully."
        if gain is not None and gain < NO_GAIN_DB:
            if change is not None:  # and not flat
                verdict += " Its vocals did not gain from the longer budget though its training loss was still falling."
        elif gain is not None:
            verdict += _extrapolation(before[-1][0]["minutes"], minutes, gain, MARGIN_DB - margin, flat)
    return (
        f"Measured by lab/benchmarks/reproduction.py after {minutes:g} minutes of training"
        + (f" ({steps} steps)" if steps else "")
        + f": vocals {vocals:.2f} dB uSDR, {margin:+.2f} dB over doing nothing (a "
        f"quarter of the mixture as the vocal estimate), median over {songs} validation songs. That is below the "
        f"+{MARGIN_DB:g} dB a separator should clear." + history + verdict + why
    )


def _extrapolation(earlier: float, minutes: float, gain: float, short: float, flat: bool) -> str:
    """What ``gain`` dB of vocals from ``earlier`` to ``minutes`` of training says about the budget that would clear
    the bar (``short`` dB more), in words: a log-linear extrapolation per doubling of the budget, said to be one."""
    if minutes <= earlier:
        return ""
    per_doubling = gain / math.log2(minutes / earlier)
    factor = 2 ** (short / per_doubling)
    size = (
        "more than a thousand times this budget"
        if factor > 1000
        else f"about {factor:.0f} times this budget ({factor * minutes / 60:.0f} hours of one core)"
    )
    return (
        f" If it kept gaining {per_doubling:+.2f} dB per doubling of the budget (its gain from {earlier:g} to "
        f"{minutes:g} minutes), clearing the bar would take {size}: an extrapolation, not a measurement"
        + (", and an optimistic one, as its loss had flattened." if flat else ".")
    )


def _trend(trend: dict | None) -> str:
    """A row's loss trend (`stemdesk.training.train.loss_trend`) in a few characters."""
    if not trend or trend.get("last_quarter_change_percent") is None:
        return "–"
    return (
        f"{trend['last_quarter_change_percent']:+.1f} % "
        f"({trend['first_block_loss']:.3g} → {trend['last_quarter_loss']:.3g})"
        + (f"; decay {trend['decay_change_percent']:+.1f} %" if trend.get("decay_change_percent") is not None else "")
    )


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _shares(teacher: Mapping[str, Any] | None) -> str:
    """A row's expected share of examples drawn from teacher labels, per source (vocals / drums / bass / other)."""
    if not teacher:
        return "–"
    drawn = teacher.get("drawn_share_per_source", {})
    return " / ".join(f"{drawn[s]:.2f}" for s in FOUR if s in drawn)


def markdown(results: Mapping[str, Any], systems: Sequence[str]) -> str:
    """The results section of lab/notes/reproduction.md from a results file ({"minutes", "setup", "rows"}); ``systems``:
    the recipes in the order the tables list them (oracles first)."""
    minutes = results["minutes"]
    setup = results.get("setup", {})
    rows = {row["system"]: row for row in results["rows"]}
    baseline = rows.get(BASELINE)
    order = [name for name in rows if name.startswith("oracle_")]
    order += [name for name in systems if name in rows]
    order += [name for name in rows if name not in order]
    command = f".venv/bin/python lab/benchmarks/reproduction.py --minutes {minutes:g}"
    decay = results.get("decay_minutes") or 0.0
    if decay:
        command += f" --decay-minutes {decay:g}"
    teacher = setup.get("teacher")
    if teacher:
        command += f" --teacher {teacher['model']} --teacher-share {teacher['share']:g}"
        command += f" --teacher-windows {teacher['windows']}"
        if teacher.get("targets"):
            command += " --teacher-targets " + " ".join(teacher["targets"])
    noise = noise_of(rows)
    if noise is not None:
        command += f" --noise {noise[0]}"
    restart = results.get("warm_restart")
    if restart:
        command += " --warm-restart" + (
            f" --warmup-steps {restart['warmup_steps']}" if restart["warmup_steps"] != WARMUP_STEPS else ""
        )
    data = "the same songs of ../shared/data"
    taught = [row["teacher"] for row in rows.values() if row.get("teacher")]
    if teacher:
        amount = f"{taught[0]['minutes']:g} minutes of " if taught else ""
        data += (
            f" plus {amount}{teacher['model']}'s labels of Debian's music (the teacher-labelled corpus, asked for "
            f"as {teacher['share']:.0%} of the examples; the cost table gives the share each recipe drew per "
            "source, lower without remixing, when only the windows whose four labels are all targets are drawn)"
        )
    lines = [
        "## Results",
        "",
        f"Produced by `{command}`: every system trained for {minutes:g} minutes of wall-clock time (one thread, "
        "pre-training included"
        + (
            f": the {budget_words(restart['from_round'])} of the round before, then {minutes - restart['from_minutes']:g} "
            "more from that round's model, a warm restart (a new optimiser, the learning rate back up over "
            f"{restart['warmup_steps']} steps)"
            if restart
            else ""
        )
        + (f"; over the last {decay:g} the learning rate fell linearly to 0" if decay else "")
        + f") on {data}, scored on validation songs never trained on (split by song). uSDR: "
        "global SDR per song, median over songs (dB). vs nothing: median over songs of the vocals uSDR minus that "
        "of doing nothing (a quarter of the mixture as the vocal estimate, the oracle_mix row)"
        + (
            f", whose median is {baseline['usdr']['vocals']:.2f} dB"
            + (
                f" (the whole mixture as the estimate scores {baseline['mixture_as_vocals']:.2f} dB)"
                if "mixture_as_vocals" in baseline
                else ""
            )
            if baseline and "vocals" in baseline.get("usdr", {})
            else ""
        )
        + ". SDR/SIR/SAR: BSS Eval v4 median over one-second frames of a 20-second vocal excerpt of the 5 "
        "validation songs with the most vocals, median over those songs (dB). These are short CPU budgets: they "
        "rank the methods under equal, small budgets; they do not reproduce the papers' numbers.",
        "",
        "### Quality",
        "",
        "| system | paper | vocals | accompaniment | drums | bass | other | vs nothing | vocals SDR/SIR/SAR | "
        "accompaniment SDR/SIR/SAR |",
        "|" + "---|" * 10,
    ]
    columns = ["vocals", "accompaniment", "drums", "bass", "other"]
    for name in order:
        row = rows[name]
        cells = [name, row.get("paper", "")]
        cells += [_cell(row["usdr"].get(c), ".2f") for c in columns]
        margin = None if name.startswith("oracle_") else vs_mixture(row, baseline)
        cells.append(_cell(margin, "+.2f"))
        for c in ("vocals", "accompaniment"):
            b = row.get("bss", {}).get(c)
            cells.append(f"{b['sdr']:.1f} / {b['sir']:.1f} / {b['sar']:.1f}" if b else "–")
        lines.append("| " + " | ".join(cells) + " |")
    earlier = results.get("earlier") or []
    if earlier:
        rounds = [*earlier, {"minutes": minutes, "decay_minutes": results.get("decay_minutes")}]
        lines += [
            "",
            "### Vocals by budget",
            "",
            (
                "The same run continued on the same songs: each recipe's model from one budget trained on to the "
                "next, the last round a warm restart from the round before's model (a new optimiser, the rate back "
                "up, then the same final decay)."
                if restart
                else "The same run continued: each recipe's checkpoint trained on from one budget to the next (same "
                "songs, same rate until any final decay)."
            )
            + " Vocals uSDR, median over the validation songs (dB); – where the system was not scored at that budget.",
            "",
            "| system | " + " | ".join(budget_words(r) for r in rounds) + " |",
            "|" + "---|" * (len(rounds) + 1),
        ]
        for name in order:
            if name.startswith("oracle_"):
                continue
            values = [r.get("vocals", {}).get(name) for r in earlier] + [rows[name]["usdr"].get("vocals")]
            lines.append(f"| {name} | " + " | ".join(_cell(v, ".2f") for v in values) + " |")
    lines += [
        "",
        "### Cost",
        "",
        "Training: CPU-minutes of pre-training and training (over every run, a resumed run's earlier ones "
        "included) and steps. Speed: times real time separating stereo 44.1 kHz audio on one thread. Size: the "
        "weights file on disk (float16), which must be at most 10 MB. CLI null: the system run through `stemdesk "
        "separate --model repro-<recipe>` on a 20-second excerpt of a real song, its 16-bit stems null-checked "
        "against the mixture. Loss trend: the training loss's mean over the last quarter of the steps against the "
        "quarter before it (near 0 %: it had flattened; clearly negative: still falling when the budget ran out), "
        "with the loss of the first steps → the last quarter's (each objective has its own scale); with a final "
        "decay of the learning rate, both before the decay, and then what the decay did (its steps' mean loss "
        "against the last quarter before it).",
        "",
        "| system | parameters | size (MB) | training (CPU-min) | steps | loss trend | speed | CLI null | teacher share |",
        "|" + "---|" * 9,
    ]
    for name in order:
        row = rows[name]
        if name.startswith("oracle_"):
            continue
        size = row.get("weights_bytes")
        cli = row.get("cli")
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _cell(row.get("parameters"), ","),
                    _cell(None if size is None else size / 1e6, ".2f"),
                    _cell(row.get("cpu_minutes"), ".1f"),
                    _cell(row.get("steps"), "d"),
                    _trend(row.get("loss_trend")),
                    "–" if not row.get("speed_x_realtime") else f"{row['speed_x_realtime']}x",
                    "–" if cli is None else "bit-exact" if cli.get("bit_exact") else f"FAILED {cli}",
                    _shares(row.get("teacher")),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "### The papers' claims",
        "",
        "Each claim as issue #26 states it, measured on the validation songs paired: per song, the first system's "
        "uSDR minus the second's (the mean over the stems named), and the median of those differences. It agrees "
        f"when the first system is higher on enough songs that a two-sided sign test gives p < {P_VALUE:g} and the "
        "median difference is larger than the run-to-run noise; it disagrees when the second system wins by the "
        "same rule; otherwise it is inconclusive. It is not tested when neither system's vocals do better than "
        "doing nothing. A claim that two systems do not differ agrees when neither wins "
        "by that rule. The sign test says whether a difference holds across songs, not whether it would survive "
        "training again: that is what the noise is for.",
        "",
    ]
    if noise is not None:
        lines.append(
            f"Run-to-run noise: `{noise[0]}` trained twice (seeds 0 and 1, same budget) differs by {noise[1]:.2f} dB "
            f"(absolute median per-song difference over its stems, {noise[2]} songs)."
        )
    else:
        lines.append(
            "Run-to-run noise: not measured in this run (`--noise RECIPE` trains one recipe a second time with "
            "another seed); until it is, a consistent difference between two single runs may still be a seed's luck."
        )
    lines += [
        "",
        "| paper | claim | systems | stems | difference (dB) | verdict | why |",
        "|" + "---|" * 7,
    ]
    for claim in CLAIMS:
        verdict = judge(claim, rows, None if noise is None else noise[1])
        systems_cell = f"`{claim.better}` vs `{claim.worse}`"
        stems = "all four" if claim.stems == FOUR else ", ".join(claim.stems)
        if verdict is None:
            lines.append(f"| {claim.paper} | {claim.claim} | {systems_cell} | {stems} | – | not measured | – |")
            continue
        lines.append(
            f"| {claim.paper} | {claim.claim} | {systems_cell} | {stems} | {verdict.difference:+.2f} | "
            f"{verdict.verdict} | {verdict.why} |"
        )
    below = [  # the shipped models: a noise run's second seed is not one
        name
        for name in order
        if not name.startswith("oracle_")
        and SEED_MARK not in name
        and (margin := vs_mixture(rows[name], baseline)) is not None
        and margin < MARGIN_DB
    ]
    lines += ["", "### Better than doing nothing?", ""]
    if below:
        lines.append(
            f"Less than +{MARGIN_DB:g} dB above doing nothing on vocals (their model cards say so): "
            + ", ".join(f"`{name}` ({vs_mixture(rows[name], baseline):+.2f} dB)" for name in below)
            + "."
        )
    else:
        lines.append(f"Every system measured is at least +{MARGIN_DB:g} dB above doing nothing on vocals.")
    return "\n".join(lines) + "\n"
