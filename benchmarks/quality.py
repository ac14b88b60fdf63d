"""Validation quality of the installed models next to the oracles, on songs never trained on.

    .venv/bin/python benchmarks/quality.py [--models stemdesk-4stem,stemdesk-2stem,spleeter-2stem] [--bss] [--speed]
        [--held-out DIR] [--no-write] [--compare MODEL] [--no-oracles]

Validation songs: the split of stemdesk/training/validation.py (every seventh MUSDB excerpt and the CC0 song
"3.Sodium"). Metric: uSDR (global SDR per song, the MDX definition), median over songs, per stem; a song where a
reference stem is silent is left out for that stem. 4-stem models are also scored on vocals / accompaniment.
``--bss`` adds BSS Eval v4 SDR/SIR/SAR on the five songs with the most vocals (slow). Models that are not
installed (Spleeter 2-stem needs `stemdesk models install spleeter-2stem`, the teacher HTDemucs `stemdesk models
install htdemucs`) are skipped with a note. With both the student (stemdesk-4stem) and the teacher scored, a
"Teacher gap" section gives the student's median uSDR minus the teacher's per stem and the songs where the student
scores higher.
``--speed`` then runs benchmarks/separation.py in the same command for the default model: a 3-minute song file to
files against the STFT + iSTFT + I/O floor and against Open-Unmix's and HTDemucs's architectures (random weights,
``pip install --no-deps openunmix demucs julius einops``), all measured in that run.
``--held-out DIR`` also scores every model on the song folders in DIR, songs no model here has trained on: the
LMMS demo songs `python -m lab.lmms_songs DIR` renders (`apt install lmms`), in a section of its own
with the teacher gap there. Scores are kept per song and per model weights in the user cache
(~/.cache/stemdesk/quality/scores.json), so a run that is killed, or run again with one new model, scores only what
it has not scored.
Results: benchmarks/results/quality.json and docs/quality.md (not with ``--no-write``, which prints the tables only).
``--compare MODEL`` also prints every other model against MODEL song by song (on each song set: the medians, the
mean and median per-song change, the songs higher and a two-sided sign test), the comparison a candidate needs
before it replaces a model: medians over a few songs move by tenths of a dB from one candidate to the next.
``--no-oracles`` (with ``--no-write``) leaves out the oracles, whose whole-song masks need about 10 GB for a long
song, so that candidates can be compared beside a training run.
A model in ``--models`` may be ``NAME=FOLDER``, a model folder that is not installed (a training run's export), scored
under NAME. ``--record-as KEY`` (with ``--compare``) writes each other model's comparison into its own card as
``metrics.KEY``, with the base's weights' sha256: how a candidate that replaces the default carries
``metrics.against_previous_default``.

    .venv/bin/python benchmarks/quality.py --no-write --no-oracles --models stemdesk-4stem,new=RUN/stemdesk-4stem \
        --compare stemdesk-4stem --record-as against_previous_default --held-out ~/.cache/stemdesk/lmms
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scoring  # noqa: E402
from scoring import DATA, SOURCES  # noqa: E402

from stemdesk.core.errors import ModelError  # noqa: E402
from stemdesk.core.separator import Separator  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.io.model_store import amend_card, find_model, load_estimator, read_card  # noqa: E402
from stemdesk.io.paths import cache_dir  # noqa: E402
from stemdesk.training.dataset import load_songs  # noqa: E402
from stemdesk.training.metrics import sign_test  # noqa: E402
from stemdesk.training.model_card import render, teacher_gap_entry, teacher_gap_rows  # noqa: E402
from stemdesk.training.validation import separate_song, split  # noqa: E402

# htdemucs is the teacher of the distillation (stemdesk models install htdemucs): its row and the teacher gap
DEFAULT_MODELS = "stemdesk-4stem,stemdesk-2stem,htdemucs,stemdesk-4stem-lite,spleeter-2stem,tiny-4stem"
STUDENT, TEACHER = "stemdesk-4stem", "htdemucs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--bss", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed", action="store_true", help="also measure speed and memory (benchmarks/separation.py)")
    parser.add_argument(
        "--held-out",
        type=Path,
        metavar="DIR",
        help="also score every model on the song folders in DIR (python -m lab.lmms_songs DIR), in a "
        "section of its own",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the tables only: leave docs/quality.md, the results file and the student's card as they are "
        "(to compare models of your own, found through STEMDESK_MODELS_PATH)",
    )
    parser.add_argument("--compare", metavar="MODEL", help="also print every other model against MODEL, song by song")
    parser.add_argument(
        "--record-as",
        metavar="KEY",
        help="with --compare: write each other model's comparison into its card as metrics.KEY",
    )
    parser.add_argument(
        "--no-oracles", action="store_true", help="leave out the oracles (needs --no-write: the page shows them)"
    )
    args = parser.parse_args()
    if args.record_as and not args.compare:
        parser.error("--record-as writes the comparison --compare makes: give --compare MODEL")
    if args.no_oracles and not args.no_write:
        parser.error("--no-oracles needs --no-write: docs/quality.md and the results file show the oracles")
    torch.set_num_threads(args.threads)
    if not args.bss:
        scoring.BSS_SONGS = 0
    _, valid_dirs = split(DATA)
    cache = ScoreCache(cache_dir() / "quality" / "scores.json")
    try:
        models, notes = installed(args.models.split(","))
    except ModelError as error:  # a NAME=FOLDER given that is not a model
        parser.error(str(error))
    if args.compare and args.compare not in [model[0] for model in models]:
        parser.error(f"--compare {args.compare}: not among the models scored ({', '.join(m[0] for m in models)})")
    rows = score_all(models, valid_dirs, cache, bss=args.bss, oracles=not args.no_oracles)
    held_out = []
    if args.held_out:
        held_dirs = sorted(p for p in args.held_out.iterdir() if (p / "meta.json").is_file())
        if not held_dirs:
            parser.error(f"{args.held_out} has no song folders (python -m lab.lmms_songs {args.held_out})")
        held_out = score_all(models, held_dirs, cache, oracles=not args.no_oracles)
    if args.compare:
        print("\n".join(paired_lines(rows, args.compare, f"the {len(valid_dirs)} validation songs")))
        if held_out:
            print("\n".join(paired_lines(held_out, args.compare, f"the {len(held_dirs)} songs of {args.held_out}")))
        if args.record_as:
            sets = {"validation": rows, **({f"held_out:{args.held_out.name}": held_out} if held_out else {})}
            record_comparison(models, sets, args.compare, args.record_as)
    if args.no_write:
        print("\n".join(table(rows) + (table(held_out, counts=True) if held_out else [])))
        return
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "notes": notes, "valid_songs": [p.name for p in valid_dirs]}
    if held_out:
        result["held_out"] = {"folder": args.held_out.name, "rows": held_out, "songs": [p.name for p in held_dirs]}
    (out / "quality.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Validation quality",
        "",
        "Produced by `.venv/bin/python benchmarks/quality.py`. uSDR (dB): global SDR per song, median over "
        f"{len(valid_dirs)} validation songs never trained on ({', '.join(p.name for p in valid_dirs[-1:])} and "
        f"{len(valid_dirs) - 1} MUSDB18 excerpts). Spleeter's figures here are on these songs, not its paper's.",
        "",
        *table(rows),
    ]
    lines += [""] + [f"- {note}" for note in notes]
    gap = teacher_gap(rows)
    if gap is not None:
        write_gap_to_card(gap)
    scored = next((len(r.get("usdr_per_song", {})) for r in rows if r["system"] == STUDENT), 0)
    lines += teacher_gap_section(gap, scored)
    if held_out:
        lines += held_out_section(held_out, held_dirs)
    if args.speed:
        lines += speed_lines(args.models.split(",")[0], args.threads)
    (ROOT / "docs").mkdir(exist_ok=True)
    page = ROOT / "docs" / "quality.md"
    page.write_text("\n".join(lines + kept_sections(page, lines)) + "\n")
    print("\n".join(lines))


COLUMNS = ["vocals", "accompaniment", "drums", "bass", "other"]


def table(rows: list[dict], counts: bool = False) -> list[str]:
    """A markdown table of each row's median uSDR per stem; ``counts``: the header says over how many songs."""

    def header(stem: str) -> str:
        n = max((len([s for s in r["usdr_per_song"].values() if stem in s]) for r in rows), default=0)
        return f"{stem} ({n})" if counts else stem

    lines = ["| system | " + " | ".join(header(c) for c in COLUMNS) + " |", "|" + "---|" * (1 + len(COLUMNS))]
    for row in rows:
        lines.append(
            f"| {row['system']} | "
            + " | ".join(f"{row['usdr'][c]:.2f}" if c in row["usdr"] else "–" for c in COLUMNS)
            + " |"
        )
    return lines


def paired(rows: list[dict], base: str) -> dict[str, dict[str, dict]]:
    """Every model's row against ``base``'s, song by song, per stem (by system, then stem): both medians
    (``median_db``: base, model), the mean and median per-song change (model minus base, dB), the songs where the
    model is higher of the ``songs`` both scored, and the two-sided sign test's p over the songs that differ."""
    reference = next(row for row in rows if row["system"] == base)
    out: dict[str, dict[str, dict]] = {}
    for row in rows:
        if row["system"] == base or row["system"].startswith("oracle_"):
            continue
        stems = out.setdefault(row["system"], {})
        for stem in COLUMNS:
            pairs = [
                (theirs[stem], row["usdr_per_song"][song][stem])
                for song, theirs in reference["usdr_per_song"].items()
                if stem in theirs and stem in row["usdr_per_song"].get(song, {})
            ]
            if not pairs:
                continue
            changes = [ours - theirs for theirs, ours in pairs]
            higher = sum(c > 0 for c in changes)
            stems[stem] = {
                "median_db": [
                    round(float(np.median([t for t, _ in pairs])), 2),
                    round(float(np.median([o for _, o in pairs])), 2),
                ],
                "mean_change_db": round(float(np.mean(changes)), 2),
                "median_change_db": round(float(np.median(changes)), 2),
                "higher_on": higher,
                "songs": len(changes),
                "sign_test_p": round(sign_test(higher, sum(c != 0 for c in changes)), 3),
            }
    return out


def paired_lines(rows: list[dict], base: str, songs: str) -> list[str]:
    """`paired` as a markdown table under a line saying on which ``songs``."""
    lines = [
        "",
        f"Against {base}, song by song, on {songs}:",
        "",
        "| model | stem | median: base → model | change: mean / median | higher on | sign test p |",
        "|---|---|---|---|---|---|",
    ]
    for system, stems in paired(rows, base).items():
        for stem, v in stems.items():
            lines.append(
                f"| {system} | {stem} | {v['median_db'][0]:.2f} → {v['median_db'][1]:.2f} | "
                f"{v['mean_change_db']:+.2f} / {v['median_change_db']:+.2f} | {v['higher_on']} of {v['songs']} | "
                f"{v['sign_test_p']:.3f} |"
            )
    return lines


def record_comparison(models: list, sets: dict[str, list[dict]], base: str, key: str) -> None:
    """Write into each model's card but ``base``'s, as ``metrics[key]``, its comparison with ``base`` on each song
    set (``sets``: name → rows), with the base's weights' sha256, and render its README again."""
    cards = {model_id: card for model_id, _, card in models}
    found = {name: paired(rows, base) for name, rows in sets.items()}
    for system, card in cards.items():
        if system == base:
            continue
        entry = {
            "how": f"per-song uSDR from benchmarks/quality.py --compare {base} (median_db: {base}, these weights)",
            "base": f"the previous {base}" if card.id == base else base,  # a candidate for base's place
            "base_weights_sha256": cards[base].weights_sha256,
            **{name: {"stems": stems[system]} for name, stems in found.items() if system in stems},
        }
        for name, rows in sets.items():
            row = next(r for r in rows if r["system"] == system)
            entry[name]["songs"] = len(row["usdr_per_song"])
        written = amend_card(card.folder, {"metrics": {**card.raw.get("metrics", {}), key: entry}})
        atomic_write_bytes(card.folder / "README.md", render(written.raw).encode("utf-8"))
        print(f"{system}: metrics.{key} written to {card.folder / 'card.json'}")


class ScoreCache:
    """Per-song scores kept between runs (the user cache), keyed by the system (a model's weights' sha256), the
    song and its files' sizes and times: a run that is killed, or run again with one new model, scores only what
    it has not scored. Written after every song, through a temporary file."""

    def __init__(self, path: Path):
        self.path = path
        self.scores: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    @staticmethod
    def key(system: str, song: Path) -> str:
        files = sorted(p for p in song.iterdir() if p.is_file())
        stamp = ",".join(f"{p.name}:{st.st_size}:{st.st_mtime_ns}" for p in files for st in [p.stat()])
        return f"{system}|{song.name}|{stamp}"

    def get(self, key: str) -> dict | None:
        return self.scores.get(key)

    def put(self, key: str, value: dict) -> None:
        self.scores[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(self.scores, indent=0).encode("utf-8"))


def installed(model_ids: list[str]) -> tuple[list[tuple[str, object, object]], list[str]]:
    """(id, estimator, card) of each model that is installed, and a note for each that is not."""
    models, notes = [], []
    for entry in model_ids:
        model_id, _, folder = entry.partition("=")
        if folder:  # NAME=FOLDER: a model folder that is not installed, scored under NAME
            estimator, card = load_estimator(read_card(Path(folder).expanduser()))
            models.append((model_id, estimator, card))
            continue
        try:
            estimator, card = load_estimator(model_id)
        except ModelError as error:
            notes.append(f"{model_id}: not scored ({error})")
            continue
        models.append((model_id, estimator, card))
    return models, notes


def score_all(
    models: list, song_dirs: list[Path], cache: ScoreCache, bss: bool = False, oracles: bool = True
) -> list[dict]:
    """The oracles' (unless not ``oracles``) and each model's rows on ``song_dirs``, song by song (one song in
    memory at a time), through ``cache`` (not with ``bss``: BSS Eval picks its songs from the whole set)."""
    systems: list[tuple[str, str, list[str], object, dict]] = [
        (f"oracle_{kind}", f"oracle_{kind}:{ORACLE_VERSION}", list(SOURCES), kind, {})
        for kind in (("irm", "mix") if oracles else ())
    ]
    for model_id, estimator, card in models:
        separator = Separator(estimator, outputs=card.outputs)
        extra = {
            "paper": card.raw.get("description", "")[:80],
            "parameters": sum(p.numel() for p in estimator.parameters()),
        }
        systems.append((model_id, f"{model_id}:{card.weights_sha256}", list(separator.sources), separator, extra))
    if bss:
        songs = load_songs(song_dirs, SOURCES)
        return [_whole_set_row(system, songs) for system in systems]
    rows = []
    bss_songs, scoring.BSS_SONGS = scoring.BSS_SONGS, 0  # per song: no BSS Eval (it is not cached)
    try:
        for system in systems:
            rows.append(_cached_row(system, song_dirs, cache))
    finally:
        scoring.BSS_SONGS = bss_songs
    return rows


def _cached_row(system: tuple, song_dirs: list[Path], cache: ScoreCache) -> dict:
    """One system's row on ``song_dirs``, scoring only the songs ``cache`` does not have."""
    name, key, sources, _, extra = system
    per_song: dict[str, dict[str, float]] = {}
    seconds = 0.0
    for folder in song_dirs:
        song_key = ScoreCache.key(key, folder)
        cached = cache.get(song_key)
        if cached is None:
            started = time.perf_counter()
            row = _whole_set_row(system, load_songs([folder], SOURCES))
            cached = {"usdr": row["usdr_per_song"].get(folder.name, {}), "seconds": time.perf_counter() - started}
            cache.put(song_key, cached)
        per_song[folder.name] = cached["usdr"]
        seconds += cached["seconds"]
    stems = {stem for values in per_song.values() for stem in values}
    medians = {stem: round(float(np.median([v[stem] for v in per_song.values() if stem in v])), 2) for stem in stems}
    row = {"system": name, "sources": sources, "usdr": medians, "usdr_per_song": per_song, "bss": {}, **extra}
    row["seconds"] = round(seconds, 1)
    print(json.dumps({k: row[k] for k in ("system", "usdr")}), flush=True)
    return row


ORACLE_VERSION = "1"  # change when the oracles' definition changes, so their cached scores are not reused


def _whole_set_row(system: tuple, songs: list) -> dict:
    name, _, sources, how, extra = system
    if isinstance(how, str):
        row = scoring.oracle_row(how, songs)
    else:
        rate = songs[0].sample_rate

        def run(index, mix, separator=how, rate=rate):
            return separate_song(separator, mix, rate)

        row = scoring.score(name, sources, run, songs, None, extra.get("parameters"))
        row.update(extra)
    return row


def held_out_section(rows: list[dict], song_dirs: list[Path]) -> list[str]:
    """docs/quality.md's section on the held-out songs (`--held-out`): the table, and the teacher gap there."""
    metas = [json.loads((p / "meta.json").read_text(encoding="utf-8")) for p in song_dirs]
    minutes = sum(m.get("seconds", 0) for m in metas) / 60
    lmms = all(str(m.get("source", "")).startswith("LMMS demo project") for m in metas)
    what = (
        "the demo projects of LMMS that Debian ships (lmms-common), rendered track by track by "
        "`python -m lab.lmms_songs`, each track put in a stem by what it is (its meta.json says which "
        "and why); electronic music, few vocals"
        if lmms
        else "the song folders given"
    )
    lines = [
        "",
        "## Held-out songs",
        "",
        f"{len(song_dirs)} songs ({minutes:.0f} minutes) that neither HTDemucs nor any StemDesk model trained on: "
        f"{what}. Same metric as above; the header gives the songs where that stem is not silent. Produced by "
        "`.venv/bin/python benchmarks/quality.py --held-out DIR`.",
        "",
        *table(rows, counts=True),
    ]
    if not any("vocals" in scores for row in rows for scores in row["usdr_per_song"].values()):
        lines += [
            "",
            "None of these songs has vocals, so a model's accompaniment is the mixture less what it wrongly calls "
            "vocals: its uSDR says how little an instrumental loses to the vocal stem (the true mixture scores "
            "without bound, hence the oracle's figure).",
        ]
    gap = teacher_gap(rows)
    if gap is not None:
        lines += [
            "",
            f"Teacher gap on these songs, {STUDENT} against {TEACHER}:",
            "",
            "| stem | student | teacher | gap (dB) | songs where the student is higher |",
            "|---|---|---|---|---|",
            *teacher_gap_rows(gap),
        ]
    return lines


def write_gap_to_card(entry: dict) -> None:
    """The student's card (and its README) get the teacher gap as ``metrics.teacher_gap``."""
    card = find_model(STUDENT)
    written = amend_card(card.folder, {"metrics": {**card.raw.get("metrics", {}), "teacher_gap": entry}})
    atomic_write_bytes(card.folder / "README.md", render(written.raw).encode("utf-8"))


def teacher_gap(rows: list[dict]) -> dict | None:
    """Student against teacher on the same songs (`teacher_gap_entry`); None unless both were scored."""
    found = {row["system"]: row for row in rows}
    if STUDENT not in found or TEACHER not in found:
        return None
    return teacher_gap_entry(found[STUDENT], found[TEACHER])


def teacher_gap_section(gap: dict | None, songs: int) -> list[str]:
    """The "Teacher gap" section of docs/quality.md (empty without a gap); ``songs``: how many the student was
    scored on."""
    if gap is None:
        return []
    return [
        "",
        "## Teacher gap",
        "",
        f"{STUDENT} (the student) against {TEACHER} (the teacher whose labels it learns from), on the same "
        f"{songs} validation songs. HTDemucs was trained on MUSDB18, whose excerpts are most "
        "of these songs, so its scores here flatter it; 3.Sodium is the song neither has seen.",
        "",
        "| stem | student | teacher | gap (dB) | songs where the student is higher |",
        "|---|---|---|---|---|",
        *teacher_gap_rows(gap),
    ]


def kept_sections(page: Path, lines: list[str]) -> list[str]:
    """The "## " sections of the page that ``lines`` (this run's) do not write again: those written by hand from
    other benchmarks (such as lab/benchmarks/ensemble.py's), and this script's own when this run skipped them (the
    speed table without ``--speed``, the held-out songs without ``--held-out``)."""
    if not page.is_file():
        return []
    written = {line[3:].strip() for line in lines if line.startswith("## ")}
    kept: list[str] = []
    for section in page.read_text().split("\n## ")[1:]:
        if section.split("\n", 1)[0].strip() not in written:
            kept += ["", f"## {section.rstrip()}"]
    return kept


def speed_lines(model: str, threads: int) -> list[str]:
    """Run benchmarks/separation.py (floor, the model, Open-Unmix, HTDemucs in one run) and tabulate it."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "separation.py"),
            "--model",
            model,
            "--threads",
            str(threads),
            "--compare",
            "--long-minutes",
            "6",
            "--card",
        ],
        check=True,
    )
    return speed_table(json.loads((ROOT / "benchmarks" / "results" / "separation.json").read_text()))


def speed_table(result: dict) -> list[str]:
    """docs/quality.md's speed section from benchmarks/results/separation.json."""
    three, model = result["three_minutes"], result["model"]
    rows = [("floor: STFT + iSTFT + I/O, no network", three["floor"]), (model, three["model"])]
    if "allocator_defaults" in three:
        rows.append((f"{model}, glibc's allocator defaults", three["allocator_defaults"]))
    rows += [
        (f"{name}, random weights", row) for name, row in result["others_random_weights"].items() if "seconds" in row
    ]
    lines = [
        "",
        "## Speed and memory",
        "",
        f"A 3-minute stereo song ({result['song']}), file in, four stems out, {result['threads']} thread, "
        f"measured in one run by `benchmarks/separation.py` at {result['measured_at']}. Seconds are each "
        "process's wall time from launch to exit, start-up and imports included:",
        "",
        "| system | seconds | × real time | × the floor | peak MB |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {result['song_seconds'] / row['seconds']:.1f} | "
            f"{row['seconds'] / three['floor']['seconds']:.2f} | {row['peak_mb']:.0f} |"
        )
    lines += [
        "",
        f"A {result['long_file']['minutes']:.0f}-minute file peaks at {result['long_file']['peak_mb']:.0f} MB, "
        f"{result['long_file']['peak_ratio_to_three_minutes']}× the 3-minute song.",
    ]
    missing = [f"{name}: {row['error']}" for name, row in result["others_random_weights"].items() if "error" in row]
    return lines + [f"- not measured: {m}" for m in missing]


if __name__ == "__main__":
    main()
