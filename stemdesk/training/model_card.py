"""Write a model's human-readable README.md from its card.json (the card stays the source of truth).

python -m stemdesk.training.model_card models/stemdesk-4stem
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def render(card: dict) -> str:
    """A model's README: its card's facts in words, a section for each part of the card there is."""
    metrics = card.get("metrics", {})
    sections = (
        _facts(card),
        _fine_tuned(card),
        _split(card, metrics),
        _unheard(card),
        _method(card),
        _postprocessing(card),
        _validation(card, metrics),
        _speed_and_comparisons(metrics),
        _budget(card),
        _data_and_licences(card),
        _fine_tuning(card),
    )
    return "\n".join(line for section in sections for line in section) + "\n"


def _facts(card: dict) -> list[str]:
    """The title, the description and the table of facts."""
    lines: list[str] = []
    lines += [f"# {card['id']}", "", card.get("description", ""), ""]
    lines += [
        "| fact | value |",
        "|---|---|",
        f"| estimator | `{card['estimator']}` |",
        f"| sources | {', '.join(card['sources'])} |",
        f"| sample rate | {card['sample_rate']} Hz |",
        f"| parameters | {card.get('parameters', 0):,} |",
        (
            f"| STFT | {card['config']['stft']['n_fft']} / {card['config']['stft']['hop']} |"
            if isinstance(card["config"].get("stft"), dict)
            else f"| segment | {card['config'].get('segment', '?')} samples (waveform network) |"
        ),
        f"| weights sha256 | `{card['weights_sha256']}` |",
        "",
    ]
    return lines


def _unheard(card: dict) -> list[str]:
    """What the model's recipe does on songs it never heard (the card's ``unheard``: leave-one-song-out folds,
    each scored at a step fixed before the run, beside the no-harm baselines on the same song)."""
    unheard = card.get("unheard")
    if not isinstance(unheard, dict) or not isinstance(unheard.get("folds"), dict):
        return []
    folds = unheard["folds"]
    children = list(card.get("sources", []))
    labels = [label for label in next(iter(folds.values()), {}) if label != "model"]
    lines = ["## On songs it never heard", ""]
    if unheard.get("caution"):
        lines += [f"**{unheard['caution']}**", ""]
    lines += [unheard.get("method", ""), ""]
    header = ["song left out"] + [f"{who} {child}" for who in ("model", *labels) for child in children]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [*folds.items(), *([("median", unheard["median"])] if isinstance(unheard.get("median"), dict) else [])]
    for song, scores in rows:
        # a child silent in a fold's songs is not scored there
        cells = [
            f"{scores[who][child]:.2f}" if child in scores[who] else "—"
            for who in ("model", *labels)
            for child in children
        ]
        lines.append(f"| {song} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _fine_tuned(card: dict) -> list[str]:
    """What a fine-tuning run that made this model gained over its base."""
    lines: list[str] = []
    tuned = card.get("fine_tune_result")
    if isinstance(tuned, dict):
        lines += [
            "## Fine-tuned",
            "",
            f"From {tuned['base']} on the songs of `{(card.get('training_data') or {}).get('folder', '?')}`, "
            f"{tuned['minutes']:g} minutes on {tuned['threads']} thread(s), {tuned['steps']} steps. Its best "
            f"validation round gained {tuned['gain_db']:+.2f} dB of mean uSDR over the base, beyond the run's own "
            f"noise ({tuned['noise_db']:.2f} dB); per stem: "
            + ", ".join(f"{s} {g:+.2f}" for s, g in tuned.get("gain_usdr_db", {}).items())
            + ".",
            "",
        ]
        if (card.get("licenses") or {}).get("weights"):
            lines += [f"Weights: {card['licenses']['weights']}.", ""]
    return lines


def _split(card: dict, metrics: dict) -> list[str]:
    """A split model's parent and children, the stem set that defined them, and how it scores against its
    baselines (on the validation songs, and the benchmark's held-out song when it has been run)."""
    split = card.get("split")
    if not isinstance(split, dict):
        return []
    parent, children = split.get("parent", "?"), list(split.get("children") or card.get("sources", []))
    lines = [
        "## What it splits",
        "",
        f"{parent} into {', '.join(children)}: `stemdesk separate SONG --split {parent}={card['id']}` or "
        f"`stemdesk split {parent.upper()}.wav --model {card['id']}`. The children add up to the {parent} stem "
        "exactly (16- and 24-bit files bit for bit).",
        "",
    ]
    stemset = split.get("stemset") or {}
    if stemset:
        lines += ["Its stems, as the stem set it was trained with names their session tracks:", ""]
        lines += [f"- {child}: {', '.join(patterns)}" for child, patterns in stemset.get("stems", {}).items()]
        if stemset.get("unsplit"):
            lines.append(f"- unsplit (their seconds left out): {', '.join(stemset['unsplit'])}")
        lines.append("")
    baselines = split.get("baselines") or {}
    scores = metrics.get("validation_usdr_median_db") or {}
    if baselines and scores:
        names = [c for c in children if c in scores]
        lines += [
            "Validation uSDR (dB, global per song, median over the validation songs):",
            "",
            "| system | " + " | ".join(names) + " |",
            "|" + "---|" * (1 + len(names)),
            "| this model | " + " | ".join(f"{scores[c]:.2f}" for c in names) + " |",
        ]
        for label, values in baselines.items():
            lines.append(f"| {label} | " + " | ".join(f"{values.get(c, float('nan')):.2f}" for c in names) + " |")
        lines.append("")
    taught = split.get("seconds_taught") or {}
    if taught:
        lines += [
            "Seconds of the training songs each child was taught from: exactly (its own tracks), in groups (loops and "
            "bounces whose stems the stem set names: the sum of their children learnt against the track) and left out:",
            "",
            "| child | exactly | in groups | left out |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {child} | {s.get('exactly', 0)} | {s.get('in_groups', 0)} | {s.get('left_out', 0)} |"
            for child, s in taught.items()
        ]
        lines.append("")
    groups = metrics.get("validation_group_usdr_median_db") or {}
    if groups:
        against = split.get("baselines_groups") or {}
        lines += [
            "Groups on the validation songs (uSDR of the children's sum against the group track with their own, dB):",
            "",
            "| group | this model | " + " | ".join(against) + " |",
            "|" + "---|" * (2 + len(against)),
        ]
        for group, value in groups.items():
            others = " | ".join(f"{against[label].get(group, float('nan')):.2f}" for label in against)
            lines.append(f"| {group} | {value:.2f} | {others} |")
        lines.append("")
    for note in split.get("notes", []):
        lines += [note, ""]
    return lines


def _method(card: dict) -> list[str]:
    """The paper's method a research model reproduces, and its recipe."""
    lines: list[str] = []
    paper = card.get("paper")
    if isinstance(paper, dict):
        split = card.get("split")
        if isinstance(split, dict):  # a split model: its network is the split recipe's unless --estimator said
            first = (
                f"A split model: {paper.get('variant', '')}, trained by `stemdesk train --split "
                f"{split.get('parent', '?')}` (recipe `{paper.get('recipe', '')}`)."
            )
        else:
            first = (
                f"{paper.get('reference', '')}: {paper.get('variant', '')}. Recipe `{paper.get('recipe', '')}` "
                f"(`stemdesk train --recipe {paper.get('recipe', '')}`), trained from scratch."
            )
        lines += ["## Method", "", first, ""]
        lines += [f"- {what}: {words}" for what, words in (paper.get("settings") or {}).items()]
        if paper.get("changed"):
            changed = ", ".join(f"{k} = {json.dumps(v)}" for k, v in paper["changed"].items())
            lines.append(f"- changed from the recipe: {changed}")
        if isinstance(paper.get("threshold"), dict):
            lines.append(f"- threshold: {threshold_words(paper['threshold'])}")
        lines.append("")
    return lines


def _postprocessing(card: dict) -> list[str]:
    """The post-processing separation applies because the card asks for it."""
    lines: list[str] = []
    post = card.get("postprocessing")
    if isinstance(post, dict) and any(post.get(k) for k in ("wiener", "vocal_gate", "binarise")):
        asked = []
        if post.get("vocal_gate"):
            asked.append(f"energy gate on vocals ({post['vocal_gate'][0]:g} s below {post['vocal_gate'][1]:g})")
        if post.get("binarise"):
            asked.append(f"binarisation (α {post['binarise']:g})")
        if post.get("wiener"):
            asked.append(f"Wiener filtering ({post['wiener']} iteration(s))")
        lines += [
            "Separation applies " + ", ".join(asked) + " unless told otherwise (`stemdesk separate "
            "--no-model-postprocessing`); the stems still null.",
            "",
        ]
    return lines


def _validation(card: dict, metrics: dict) -> list[str]:
    """The validation scores, and those of the weights a run continued from."""
    lines: list[str] = []
    median = metrics.get("validation_usdr_median_db")
    if median:
        lines += [
            "## Validation (songs never trained on)",
            "",
            "Global SDR per song (uSDR, the MDX definition), median over validation songs, dB, at training "
            f"step {metrics.get('step', '?')}"
            + (
                f" ({metrics['training_seconds'] / 60:.0f} minutes into this run):"
                if metrics.get("training_seconds")
                else ":"
            ),
            "",
            "| " + " | ".join(median) + " |",
            "|" + "---|" * len(median),
            "| " + " | ".join(f"{v:.2f}" for v in median.values()) + " |",
            "",
        ]
    before = card.get("training", {}).get("continued_from")
    if before:
        facts = [f"sha256 `{before['weights_sha256'][:12]}…`"] if before.get("weights_sha256") else []
        if before.get("step") and before.get("cpu_minutes"):
            facts.append(f"training step {before['step']} after {before['cpu_minutes']:.0f} CPU-minutes")
        lines += [
            "This run continued from the earlier weights"
            + (f" ({', '.join(facts)})" if facts else "")
            + ", which scored "
            + ", ".join(f"{k} {v:.2f}" for k, v in (before.get("validation_usdr_median_db") or {}).items())
            + " on the same songs.",
            "",
        ]
    return lines


def _speed_and_comparisons(metrics: dict) -> list[str]:
    """The measured speed, the gap to the teacher, and comparisons with other weights."""
    lines: list[str] = []
    speed = metrics.get("speed")
    if speed:
        lines += [
            "## Speed",
            "",
            f"Measured by `benchmarks/separation.py` on {speed['machine']}: a 3-minute stereo "
            f"song file to files in {speed['seconds']:.1f} s from launch to exit "
            f"({speed['real_time_factor']:.1f}× real time, {speed['threads']} thread), "
            f"peak memory {speed['peak_mb']:.0f} MB; "
            f"{speed['time_ratio_to_floor']:.2f}× the time of the same pipeline with no network.",
            "",
        ]
    gap = metrics.get("teacher_gap")
    if gap and gap.get("stems"):
        lines += [
            "## Teacher gap",
            "",
            f"This model against {gap['teacher']}, on the same validation songs (uSDR medians, dB; measured by "
            f"`{gap.get('measured_by', 'benchmarks/quality.py')}`):",
            "",
            "| stem | this model | teacher | gap | songs where this model is higher |",
            "|---|---|---|---|---|",
        ]
        lines += teacher_gap_rows(gap) + [""]
    for key, entry in metrics.items():
        if isinstance(entry, dict) and ("base_weights_sha256" in entry or "previous_weights_sha256" in entry):
            lines += comparison_lines(key, entry)
    return lines


def _budget(card: dict) -> list[str]:
    """The CPU budget a run had and how its loss went."""
    lines: list[str] = []
    budget = card.get("training", {}).get("budget")
    if budget:
        pre = budget.get("pretraining")
        lines += [
            "## CPU budget",
            "",
            f"{budget['minutes']:g} minutes of wall-clock time on {budget['threads']} thread(s) ({budget['device']}): "
            f"{budget['steps']} training steps"
            + (f" after {pre['steps']} autoencoder pre-training steps ({pre['seconds']:.0f} s)" if pre else "")
            + f"; {budget['wall_seconds']} s of wall-clock and {budget['cpu_seconds']} s of CPU time for the whole "
            "job (data checks and validation included)"
            + (
                f", {budget['training_cpu_seconds']} s of CPU time for pre-training and training over every run "
                "(a resumed run's earlier ones included)."
                if "training_cpu_seconds" in budget
                else "."
            ),
            "",
        ]
        trend = budget.get("loss_trend")
        if trend and trend.get("last_quarter_change_percent") is not None:
            lines += [
                f"The training loss went from {trend['first_block_loss']:.4g} (first {trend['steps_per_point']} "
                f"steps) to {trend['last_quarter_loss']:.4g} (mean of the last quarter of the steps), "
                f"{trend['last_quarter_change_percent']:+.1f} % against the quarter before it"
                + (" before the learning rate's final decay" if trend.get("decay_from_step") is not None else "")
                + (
                    ": it was still falling when the budget ran out."
                    if trend["last_quarter_change_percent"] <= -5
                    else ": it had nearly flattened."
                ),
                "",
            ]
            if trend.get("decay_change_percent") is not None:
                lines += [
                    f"From step {trend['decay_from_step']} the learning rate fell linearly to 0 over the budget's last "
                    f"{budget.get('decay_minutes') or '?'} minutes; the loss over those steps averaged "
                    f"{trend['decay_loss']:.4g}, {trend['decay_change_percent']:+.1f} % against the quarter before them.",
                    "",
                ]
    measured = card.get("reproduction", {}).get("note")
    if measured:
        lines += ["## Measured by the reproduction benchmark", "", measured, ""]
    return lines


def _data_and_licences(card: dict) -> list[str]:
    """What it was trained on, and the licences."""
    lines: list[str] = []
    data = card.get("training_data", {})
    lines += ["## Training data", ""]
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, list):
                shown = f"{len(value)} songs" if key.endswith("songs") else ", ".join(map(str, value))
            elif isinstance(value, dict) and key == "excluded":
                shown = ", ".join(value) or "none"
            elif isinstance(value, dict) and key == "teacher":
                shown = _teacher(value)
            else:
                shown = value
            lines.append(f"- {key.replace('_', ' ')}: {shown}")
    else:
        lines.append(f"- {data}")
    lines += ["", "## Licences", ""]
    for key, value in card.get("licenses", {}).items():
        lines.append(f"- {key}: {value}")
    return lines


def _fine_tuning(card: dict) -> list[str]:
    """The fine-tuning run recorded in it, how to fine-tune it further, and its recipe."""
    lines: list[str] = []
    tuning = card.get("training", {}).get("fine_tuning")
    if tuning:
        # A variant (stemdesk-2stem) shares its weights' card: the table has the stems that were trained.
        trained = list(next(iter(tuning["validation_by_step"].values())))
        lines += [
            "",
            "## Fine-tuning",
            "",
            f"{tuning['steps_run']} steps ({tuning['minutes_run']} minutes) were run; validation uSDR by step:",
            "",
            "| step | " + " | ".join(trained) + " |",
            "|" + "---|" * (1 + len(trained)),
        ]
        for step, scores in tuning["validation_by_step"].items():
            lines.append(f"| {step} | " + " | ".join(f"{scores[s]:.2f}" for s in trained) + " |")
        note = tuning.get("note", "")
        lines += ["", tuning["decision"] + (f" ({note[:1].upper()}{note[1:]}.)" if note else "")]
    advice = card.get("fine_tune")
    if advice:
        frozen = ", ".join(f"`{p}`" for p in advice.get("freeze", ())) or "nothing"
        lines += [
            "",
            "## Fine-tuning it on your songs",
            "",
            f"`stemdesk train --from {card['id']}` uses learning rate {advice['lr']:g} with {frozen} frozen "
            f"unless you give `--lr`/`--freeze`. {advice.get('why', '')}".rstrip(),
        ]
    training = card.get("training", {}).get("config")
    if training:
        lines += ["", "## Recipe", "", "```json", json.dumps(training, indent=1), "```"]
    return lines


def comparison_lines(key: str, entry: dict) -> list[str]:
    """A card's comparison with other weights, song by song (``metrics.KEY`` as benchmarks/quality.py --record-as
    writes it, or the shipped default's against_previous_default): one row per song set and stem."""
    base = entry.get("base", "the previous weights")
    sha = str(entry.get("base_weights_sha256") or entry.get("previous_weights_sha256"))
    lines = [
        f"## Against {base} (metrics.{key})",
        "",
        f"Song by song against {base} (weights sha256 {sha[:12]}…); uSDR, dB.",
        "",
        "| songs | stem | median: before → these | change: mean / median | higher on | sign test p |",
        "|---|---|---|---|---|---|",
    ]
    for name, section in entry.items():
        if not isinstance(section, dict) or "stems" not in section:
            continue
        for stem, v in section["stems"].items():
            before, after = v.get("median_db", [float("nan")] * 2)
            lines.append(
                f"| {name} ({section.get('songs', v['songs'])}) | {stem} | {before:.2f} → {after:.2f} | "
                f"{v['mean_change_db']:+.2f} / {v['median_change_db']:+.2f} | {v['higher_on']} of {v['songs']} | "
                f"{v['sign_test_p']:.3f} |"
            )
    return lines + [""]


def teacher_gap_entry(student: dict, teacher: dict) -> dict:
    """A card's ``metrics.teacher_gap`` from two rows of benchmarks/quality.py (``usdr`` medians and
    ``usdr_per_song``): per stem, the student's and the teacher's median uSDR, the difference, and on how many of
    the songs both were scored on the student is higher."""
    stems = {}
    for stem in ("vocals", "drums", "bass", "other", "accompaniment"):
        if stem not in student["usdr"] or stem not in teacher["usdr"]:
            continue
        per_song = [
            (s[stem], teacher["usdr_per_song"][name][stem])
            for name, s in student.get("usdr_per_song", {}).items()
            if stem in s and stem in teacher.get("usdr_per_song", {}).get(name, {})
        ]
        stems[stem] = {
            "student": student["usdr"][stem],
            "teacher": teacher["usdr"][stem],
            "gap": round(student["usdr"][stem] - teacher["usdr"][stem], 2),
            "student_higher": sum(a > b for a, b in per_song),
            "songs": len(per_song),
        }
    return {"teacher": teacher["system"], "measured_by": "benchmarks/quality.py", "stems": stems}


def teacher_gap_rows(gap: dict) -> list[str]:
    """The rows of a teacher-gap table (stem, student, teacher, gap, songs where the student is higher) from a
    `teacher_gap_entry`: the card's and docs/quality.md's."""
    return [
        f"| {stem} | {v['student']:.2f} | {v['teacher']:.2f} | {v['gap']:+.2f} | {v['student_higher']}/{v['songs']} |"
        for stem, v in gap["stems"].items()
    ]


def _teacher(entry: dict) -> str:
    """training_data.teacher in words: whose labels, how much of them, and how much of the training they were."""
    words = (
        f"{entry.get('model')}'s labels, {entry.get('minutes')} minutes in {entry.get('windows')} windows of "
        f"{entry.get('window_seconds')} s, asked for as {entry.get('share_of_examples')} of the examples"
    )
    drawn = entry.get("drawn_share_per_source")
    if drawn:
        words += "; drawn per source: " + ", ".join(f"{k} {v:.2f}" for k, v in drawn.items())
    if entry.get("targets"):
        words += f"; targets: {', '.join(entry['targets'])}"
    packages = entry.get("packages")
    if packages:
        words += f"; packages: {', '.join(packages)}"
    for key in ("note", "labels_grew"):  # labels_grew: a run resumed while the labeller added windows
        if entry.get(key):
            words += f". {entry[key][:1].upper()}{entry[key][1:]}"
    return words


def main(argv: list[str] | None = None) -> None:
    for folder in map(Path, argv if argv is not None else sys.argv[1:]):
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        (folder / "README.md").write_text(render(card), encoding="utf-8")
        print(folder / "README.md")


def threshold_words(report: dict[str, Any]) -> str:
    """The choice in words, for the card."""
    scores = report["median_usdr_db"]
    chosen, at_half = scores[f"{report['chosen']:g}"], scores.get("0.5")
    return (
        f"{report['key']} = {report['chosen']:g}, chosen after training among {', '.join(scores)} as the best median "
        f"{report['source']} uSDR on the loudest {report['excerpt_seconds']:g} s of {report['songs']} training songs "
        f"({chosen:.2f} dB" + (f"; at 0.5: {at_half:.2f} dB)" if at_half is not None else ")")
    )


if __name__ == "__main__":
    main()
