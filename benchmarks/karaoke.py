"""Karaoke alignment: how close `stemdesk.karaoke.align` puts each word to where it is sung.

    .venv/bin/python benchmarks/karaoke.py [--data ../shared/data/jamendolyrics-dev] [--stems DIR] [--songs N]
    .venv/bin/python benchmarks/karaoke.py --lead-notes [--sessions ../shared/data/cc0-efree-sessions]

On the JamendoLyrics songs in --data (`song.mp3`, `lyrics.txt`, the annotators' `words.csv` and `lines.csv`), per song
and as the median over songs:

- the mean absolute error of the words' starts (seconds),
- the share of words that start within 0.3 s of the annotation,
- the share of lines that start within 0.5 s,

for the systems measured in the same run: the aligner's two methods (``phonetic``: espeak-ng's speech of the lyrics
warped onto the vocal, what ships; ``voicing``: round one's syllables on voicing and onsets, the fallback without
espeak-ng) on StemDesk's separated vocals (the default model, separated once into --stems and reused) and on the mix
without separating, and the baseline of spreading the words evenly over the frames where the separated vocals sound.
Also each method's time (one thread) and peak memory (numpy's and Python's allocations, by tracemalloc; espeak-ng's
child process is not counted) on the separated vocals. Results: benchmarks/results/karaoke.json.

``--lead-notes`` measures what an UltraStar song's pitches come from instead: the lead vocal's notes (Basic Pitch,
one voice; `stemdesk midi --install` first) from StemDesk's separated lead (the default model's vocals split by
stemdesk-vocals-leadback) against those from the true lead (each CC0 session's `VOX LEAD` track), as the note
F-measure of benchmarks/midi.py (onset within 50 ms, the same note), on the five CC0 songs; and from the separated
vocals unsplit, which is what karaoke aligns on without --keep-backing.

The lyrics are read by `stemdesk.karaoke.lyrics.parse_lyrics`, as the app reads them; its words are the annotations'.
The language is the collection's (meta.csv), as a user would choose it. Without the data the benchmark says so and
exits 0; without espeak-ng it measures the voicing method only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemdesk.io.audio import read  # noqa: E402
from stemdesk.karaoke import tts  # noqa: E402
from stemdesk.karaoke.align import HOP, align, features, mono_at_feature_rate  # noqa: E402
from stemdesk.karaoke.lyrics import parse_lyrics  # noqa: E402
from stemdesk.karaoke.model import Lyrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "jamendolyrics-dev"
RESULTS = ROOT / "benchmarks" / "results" / "karaoke.json"
LANGUAGES = {"French": "fr", "Spanish": "es", "English": "en", "German": "de"}
WORD_TOLERANCE = 0.3
LINE_TOLERANCE = 0.5


def song_lyrics(song: Path, language: str | None) -> Lyrics:
    lyrics = parse_lyrics((song / "lyrics.txt").read_text(encoding="utf-8"))
    lyrics.language = language
    return lyrics


def truth(song: Path) -> tuple[np.ndarray, np.ndarray]:
    """(word starts (words,), line starts (lines,)) in seconds, as annotated."""
    with open(song / "words.csv") as f:
        words = np.array([float(row["word_start"]) for row in csv.DictReader(f)])
    with open(song / "lines.csv") as f:
        lines = np.array([float(row["start_time"]) for row in csv.DictReader(f)])
    return words, lines


def scores(word_starts: np.ndarray, line_starts: np.ndarray, true_words: np.ndarray, true_lines: np.ndarray) -> dict:
    error = np.abs(word_starts - true_words)
    return {
        "mean_abs_error_s": round(float(error.mean()), 3),
        "words_within_0.3s_pct": round(100 * float((error <= WORD_TOLERANCE).mean()), 1),
        "lines_within_0.5s_pct": round(100 * float((np.abs(line_starts - true_lines) <= LINE_TOLERANCE).mean()), 1),
    }


def aligned_starts(lyrics: Lyrics) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([w.start for w in lyrics.words], float),
        np.array([line.start for line in lyrics.lines if line.words], float),
    )


def even_spread(lyrics: Lyrics, vocals: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Words spread evenly over the frames where the separated vocal sounds (its `voiced` above one half)."""
    voiced, _, _ = features(mono_at_feature_rate(vocals, rate))
    sounding = np.flatnonzero(voiced > 0.5)
    count = len(lyrics.words)
    picks = sounding[np.linspace(0, len(sounding) - 1, count).round().astype(int)] * HOP
    starts = np.array(picks, float)
    index, line_starts = 0, []
    for line in lyrics.lines:
        if line.words:
            line_starts.append(starts[index])
            index += len(line.words)
    return starts, np.array(line_starts)


def separated_vocals(song: Path, stems: Path) -> Path:
    out = stems / song.name
    vocals = out / "song" / "vocals.wav"
    if not vocals.is_file():
        print(f"  separating {song.name} (once; cached in {out})", flush=True)
        command = [sys.executable, "-m", "stemdesk", "separate", str(song / "song.mp3"), "-o", str(out)]
        subprocess.run(command + ["--threads", "1"], check=True)
    return vocals


def language_of(song: Path) -> str | None:
    with open(song / "meta.csv") as f:
        return LANGUAGES.get(next(csv.DictReader(f)).get("Language", ""))


def timed_align(
    lyrics: Lyrics, audio: np.ndarray, rate: int, language: str | None, method: str
) -> tuple[Lyrics, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    result = align(lyrics, audio, rate, language=language, method=method)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--stems", type=Path, default=cache / "stemdesk-benchmarks" / "karaoke-stems")
    parser.add_argument("--songs", type=int, default=0, help="only the first N songs (0: all)")
    parser.add_argument("--no-mix", action="store_true", help="skip aligning on the mix")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--lead-notes", action="store_true", help="the lead's notes, separated against true")
    parser.add_argument("--sessions", type=Path, default=ROOT.parent / "shared" / "data" / "cc0-efree-sessions")
    args = parser.parse_args()
    if args.lead_notes:
        return lead_notes(args.sessions, args.out.with_name("karaoke-lead-notes.json"))
    songs = sorted(p for p in args.data.glob("*/") if (p / "lyrics.txt").is_file()) if args.data.is_dir() else []
    if not songs:
        print(f"No JamendoLyrics songs in {args.data} (folders with song.mp3, lyrics.txt, words.csv): skipped.")
        return 0
    import torch

    torch.set_num_threads(1)
    songs = songs[: args.songs or None]
    methods = ["phonetic", "voicing"] if tts.available() else ["voicing"]
    if len(methods) == 1:
        print(f"espeak-ng is missing: the phonetic method is not measured. {tts.INSTALL_HINT}")
    systems = [f"{m}_separated" for m in methods] + ([] if args.no_mix else [f"{m}_mix" for m in methods])
    systems.append("even_spread")
    table: dict[str, dict] = {}
    for song in songs:
        language = language_of(song)
        lyrics = song_lyrics(song, language)
        true_words, true_lines = truth(song)
        if len(lyrics.words) != len(true_words):
            print(f"  {song.name}: {len(lyrics.words)} words in lyrics.txt, {len(true_words)} in words.csv: skipped")
            continue
        vocals, rate = read(separated_vocals(song, args.stems))
        row: dict[str, dict] = {}
        for method in methods:
            result, seconds, peak = timed_align(lyrics, vocals, rate, language, method)
            name = f"{method}_separated"
            row[name] = scores(*aligned_starts(result), true_words, true_lines)
            row[name] |= {"align_s": round(seconds, 2), "peak_mb": round(peak, 1)}
            row[name]["song_s"] = round(vocals.shape[-1] / rate, 1)
            row[name]["low_confidence_lines"] = sum((line.confidence or 0) < 0.5 for line in result.lines)
            wrong = [abs(line.start - t) > LINE_TOLERANCE for line, t in zip(result.lines, true_lines, strict=True)]
            doubted = [(line.confidence or 0) < 0.5 for line in result.lines]
            # how well the confidence tells: of the misplaced lines, the share doubted; of the doubted, the share wrong
            row[name]["wrong_lines_doubted_pct"] = round(
                100 * float(np.mean([d for d, w in zip(doubted, wrong, strict=True) if w])) if any(wrong) else 100.0, 1
            )
            row[name]["doubted_lines_wrong_pct"] = round(
                100 * float(np.mean([w for d, w in zip(doubted, wrong, strict=True) if d])) if any(doubted) else 0.0, 1
            )
        row["even_spread"] = scores(*even_spread(lyrics, vocals, rate), true_words, true_lines)
        del vocals
        if not args.no_mix:
            mix, rate = read(song / "song.mp3")
            for method in methods:
                result, seconds, _ = timed_align(lyrics, mix, rate, language, method)
                row[f"{method}_mix"] = scores(*aligned_starts(result), true_words, true_lines)
                row[f"{method}_mix"]["align_s"] = round(seconds, 2)
            del mix
        table[song.name] = row
        print(f"{song.name} ({language})")
        for system in systems:
            if system in row:
                print(f"  {system:18s} {row[system]}")
    median = {
        system: {
            key: round(float(np.median([table[s][system][key] for s in table])), 3)
            for key in ("mean_abs_error_s", "words_within_0.3s_pct", "lines_within_0.5s_pct")
        }
        for system in systems
        if all(system in table[s] for s in table)
    }
    print("median over songs")
    for system, values in median.items():
        print(f"  {system:18s} {values}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"songs": table, "median": median}, indent=2, ensure_ascii=False) + "\n")
    print(f"Results: {args.out}")
    return 0


def lead_notes(sessions: Path, out: Path) -> int:
    """The lead vocal's notes from the separated lead and vocals against the true lead's (see the docstring)."""
    if not sessions.is_dir():
        print(f"No CC0 sessions in {sessions}: skipped.")
        return 0
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from midi import matched  # the MIDI benchmark's note F-measure

    from stemdesk.jobs.separate import SeparateOptions, SeparationEngine
    from stemdesk.transcribe.pitched import BasicPitch

    torch.set_num_threads(1)
    pitch = BasicPitch()
    engine = SeparationEngine("stemdesk-4stem", "cpu")
    split = SeparationEngine("stemdesk-vocals-leadback", "cpu")
    rows = {}
    for folder in sorted(p for p in sessions.iterdir() if (p / "VOX LEAD.ogg").is_file()):
        mix = None  # the tracks' sum (the song), one track in memory at a time
        for path in sorted(folder.glob("*.ogg")):
            audio, rate = read(path)
            audio = np.broadcast_to(audio, (2, audio.shape[-1]))
            if mix is None:
                mix = np.zeros_like(audio, dtype=np.float32)
            n = min(mix.shape[-1], audio.shape[-1])
            mix = mix[:, :n] + audio[:, :n]
        assert mix is not None
        n = mix.shape[-1]
        true_lead = np.broadcast_to(read(folder / "VOX LEAD.ogg")[0][:, :n], (2, n))
        stems = dict(zip(engine.sources, engine.separate_array(mix, rate, SeparateOptions(model="stemdesk-4stem"))))
        children = dict(
            zip(split.sources, split.separate_array(stems["vocals"], rate, SeparateOptions(model=split.card.id)))
        )

        def notes(audio: np.ndarray, rate: int = rate) -> list[tuple[float, int]]:
            return [(note.start, note.pitch) for note in pitch.transcribe(audio, rate, voices=1)]

        truth_notes = notes(true_lead)
        row: dict = {"true_lead_notes": len(truth_notes)}
        for label, audio in (("separated lead", children["lead"]), ("separated vocals", stems["vocals"])):
            precision, recall, f = matched(notes(audio), truth_notes)
            row[label] = {"f": round(f, 3), "precision": round(precision, 3), "recall": round(recall, 3)}
        rows[folder.name] = row
        print(folder.name, json.dumps(row), flush=True)
    median = {
        label: round(float(np.median([r[label]["f"] for r in rows.values()])), 3)
        for label in ("separated lead", "separated vocals")
    }
    print("median note F-measure against the true lead's notes:", median)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"songs": rows, "median_f": median}, indent=2) + "\n")
    print(f"Results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
