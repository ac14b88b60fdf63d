"""MIDI from stems against the notes the songs were made of: songs rendered from MIDI by FluidSynth with a General
MIDI sound font (Debian's fluidsynth and fluid-soundfont-gm), each part on its own track, so every note is known.

    .venv/bin/python benchmarks/midi.py [--songs 10] [--seconds 30] [--threads 1]

Songs: `lab/synthetic.py`'s composer (random tempo 80-160 BPM, key, chord progression, drum kit, bass and keys
programs, a lead line), its lead rendered as the vocals stem with a voice patch (voice oohs or synth voice), its
chords as other, its bass and drums as they are: four stems that sum to the song. The song is separated by the
default model; StemDesk's transcription (`stemdesk.transcribe`) then runs on the true stems, on the separated stems,
and on the mix itself (the gain of separating first).

Metric: note F-measure (mir_eval's onset criterion: onset within 50 ms, the same MIDI note; notes matched one to one
to maximise the matches), per stem: melody (vocals, one voice), bass (one voice), chords (other, several voices),
kick (36) and snare (38, and 40 played as a snare) from the drums. From the mix: every pitched note of the song
against the melody's, the bass's and the chords' notes together, and the drum hits against the drums'.

Real music (`--real`): the default model's 14 validation songs (13 MUSDB18 excerpts and the CC0 "Sodium", real
singing, never trained on), whose notes nobody wrote down: each stem's notes from the separated stem and from the mix
are scored against the notes the same transcriber finds in the true stem (the F-measure above, the true stem's notes
as reference): what separating first costs the transcriber, and what it gains over the mix, on real recordings.

Targets: each stem from the separated stem at most 0.05 below the true stem; melody and bass from the separated
stems at least 0.75; kick and snare at least 0.8. Also timed: the MIDI of a 3-minute song on one thread after the
stems exist (target 10 s), and its peak memory (target 1 GB).

Results: benchmarks/results/midi.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import mido
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from separation import timed  # noqa: E402

from lab.synthetic import TICKS, compose, render  # noqa: E402
from stemdesk.io.atomic import atomic_write_bytes  # noqa: E402
from stemdesk.jobs.separate import SeparateOptions, SeparationEngine, set_threads  # noqa: E402
from stemdesk.transcribe.drums import drum_hits  # noqa: E402
from stemdesk.transcribe.pitched import BasicPitch  # noqa: E402

RATE = 44100
VOICES = (53, 54)  # voice oohs, synth voice: the melody as something a separator takes for vocals
WINDOW = 0.05


def notes_of(tracks: list[mido.MidiTrack], tempo: int) -> list[tuple[float, int]]:
    """(onset seconds, MIDI note) of every note of ``tracks`` at ``tempo`` µs per beat."""
    out = []
    for track in tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity:
                out.append((mido.tick2second(now, TICKS, tempo), message.note))
    return sorted(out)


def one_hit(notes: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The composer sometimes plays the same drum twice at once (an extra kick on a beat): one hit, as heard."""
    out: list[tuple[float, int]] = []
    for t, p in sorted(notes):
        if not (out and out[-1][1] == p and t - out[-1][0] < 0.03):
            out.append((t, p))
    return out


def f_measure(found: list[tuple[float, int]], truth: list[tuple[float, int]]) -> float:
    """Note F-measure: onset within 50 ms and the same note, matched one to one (maximum matching)."""
    return matched(found, truth)[2]


def matched(found: list[tuple[float, int]], truth: list[tuple[float, int]]) -> tuple[float, float, float]:
    """(precision, recall, F-measure) of ``found`` against ``truth``, matched as `f_measure` says."""
    if not found and not truth:
        return 1.0, 1.0, 1.0
    if not found or not truth:
        return 0.0, 0.0, 0.0
    from scipy.optimize import linear_sum_assignment

    f = np.array(found, dtype=float)
    t = np.array(truth, dtype=float)
    ok = (np.abs(f[:, None, 0] - t[None, :, 0]) <= WINDOW) & (f[:, None, 1] == t[None, :, 1])
    rows, cols = linear_sum_assignment(-ok.astype(float))
    hits = int(ok[rows, cols].sum())
    return hits / len(found), hits / len(truth), 2 * hits / (len(found) + len(truth))


def song(seed: int, seconds: float, folder: Path) -> dict | None:
    """A song with a lead line: its four stems rendered, and the notes of each part; None when the composer gave
    this seed no lead."""
    rng = np.random.default_rng(seed)
    tempo, tracks = compose(rng, bars=1)
    bars = max(1, int(round(seconds / (4 * tempo / 1e6))))
    rng = np.random.default_rng(seed)
    tempo, tracks = compose(rng, bars=bars)
    if len(tracks["other"]) < 2:
        return None
    chords, lead = tracks["other"]
    voice = int(VOICES[seed % len(VOICES)])
    lead = mido.MidiTrack(
        [m.copy(program=voice) if m.type == "program_change" else m for m in lead]
    )  # the lead, sung by a voice patch
    parts = {"vocals": [lead], "drums": tracks["drums"], "bass": tracks["bass"], "other": [chords]}
    audio = {name: render(tempo, part, RATE, folder, f"{seed}-{name}") for name, part in parts.items()}
    # the song's bars and half a second of tail; a part whose last note ends earlier is silent to the end
    length = int((bars * 4 * tempo / 1e6 + 0.5) * RATE)
    audio = {name: np.pad(a[:2, :length], ((0, 0), (0, max(0, length - a.shape[-1])))) for name, a in audio.items()}
    drums = notes_of(parts["drums"], tempo)
    return {
        "seed": seed,
        "bpm": round(mido.tempo2bpm(tempo), 1),
        "audio": audio,
        "truth": {
            "melody": notes_of([lead], tempo),
            "bass": notes_of(parts["bass"], tempo),
            "chords": notes_of([chords], tempo),
            "kick": one_hit([(t, 36) for t, p in drums if p == 36]),
            "snare": one_hit([(t, 38) for t, p in drums if p in (38, 40)]),
        },
    }


def transcribe(stems: dict[str, np.ndarray], pitch: BasicPitch) -> dict[str, list[tuple[float, int]]]:
    """Each stem as `stemdesk midi` transcribes it: melody and bass one voice (the bass's onsets placed on their
    attacks in the song, the stems' sum), chords several voices, drum hits."""
    hits = drum_hits(stems["drums"], RATE)
    song = sum(stems.values()).mean(axis=0)
    return {
        "melody": [(n.start, n.pitch) for n in pitch.transcribe(stems["vocals"], RATE, voices=1)],
        "bass": [(n.start, n.pitch) for n in pitch.transcribe(stems["bass"], RATE, voices=1, mixture=song)],
        "chords": [(n.start, n.pitch) for n in pitch.transcribe(stems["other"], RATE)],
        "kick": [(n.start, 36) for n in hits if n.pitch == 36],
        "snare": [(n.start, 38) for n in hits if n.pitch == 38],
    }


def real_songs(engine: SeparationEngine, pitch: BasicPitch, model: str) -> dict:
    """Notes from ``model``'s separated stems and from the mix against the true stems' notes, on the default model's
    validation songs (see the module's docstring)."""
    from stemdesk.io.audio import read

    data = ROOT.parent / "shared" / "data"
    # the default model's validation songs, whichever model separates them
    names = json.loads((ROOT / "models" / "stemdesk-4stem" / "card.json").read_text())["training_data"]["valid_songs"]
    rows = []
    for name in names:
        folder = data / name
        if not folder.is_dir():
            continue
        stems = {}
        for stem in ("vocals", "drums", "bass", "other"):
            audio, rate = read(folder / f"{stem}.ogg")
            stems[stem] = audio
        assert rate == RATE
        mix = sum(stems.values())
        separated = dict(zip(engine.sources, engine.separate_array(mix, RATE, SeparateOptions(model=model))))
        reference = transcribe(stems, pitch)
        found = transcribe(separated, pitch)
        pitched = [(n.start, n.pitch) for n in pitch.transcribe(mix, RATE)]
        hits = drum_hits(mix, RATE)
        from_mix = {
            "melody": pitched,
            "bass": pitched,
            "chords": pitched,
            "kick": [(n.start, 36) for n in hits if n.pitch == 36],
            "snare": [(n.start, 38) for n in hits if n.pitch == 38],
        }
        row: dict = {"song": name, "seconds": round(mix.shape[-1] / RATE, 1), "true_stem_notes": {}, "scores": {}}
        for part, notes in reference.items():
            row["true_stem_notes"][part] = len(notes)
            if len(notes) < 5:  # a stem with (almost) no notes: agreement is undefined there
                continue
            precision, recall, f = matched(found[part], notes)
            row["scores"][part] = {
                "separated stem": round(f, 3),
                "separated stem (precision)": round(precision, 3),
                "separated stem (recall)": round(recall, 3),
                # the mix's every note against this stem's: its precision is low by construction; recall shows
                "the mix itself (recall)": round(matched(from_mix[part], notes)[1], 3),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    parts = ["melody", "bass", "chords", "kick", "snare"]
    median: dict = {}
    for part in parts:
        scored = [r["scores"][part] for r in rows if part in r["scores"]]
        median[part] = {"songs": len(scored)}
        for label in scored[0] if scored else {}:
            median[part][label] = round(float(np.median([s[label] for s in scored])), 3)
    return {"songs": [r["song"] for r in rows], "median_agreement_with_true_stem_notes": median, "per_song": rows}


def speed(threads: int) -> dict:
    """The MIDI of a 3-minute song (a synthetic song rendered to 180 s) on ``threads``: time and peak memory of a
    fresh process running `stemdesk midi` on its true stems (measured as benchmarks/separation.py measures a
    separation: `timed`)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        made = None
        seed = 100
        while made is None:
            made = song(seed, 180.0, folder)
            seed += 1
        stems = folder / "song"
        stems.mkdir()
        from stemdesk.io.audio import write
        from stemdesk.io.formats import OutputFormat

        target = int(180 * RATE)
        for name, audio in made["audio"].items():  # the song played again up to 3 minutes (its tempo is random)
            whole = np.tile(audio, (1, -(-target // audio.shape[-1])))[:, :target]
            write(stems / f"{name}.wav", whole, RATE, OutputFormat.parse("wav", "24"))
        command = [str(ROOT / ".venv" / "bin" / "stemdesk"), "midi", str(stems), "--threads", str(threads)]
        code, _, err, seconds, peak_mb = timed(command, None)
        assert code == 0, err
    return {
        "song_seconds": 180.0,
        "threads": threads,
        "seconds": round(seconds, 2),
        "meets_time_target": seconds <= 10.0,
        "peak_mb": round(peak_mb),
        "meets_memory_target": peak_mb <= 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="stemdesk-4stem", help="the separating model")
    parser.add_argument("--speed-only", action="store_true", help="only the time and memory (the scores there stay)")
    parser.add_argument("--no-speed", action="store_true", help="leave out the time and memory")
    parser.add_argument("--real", action="store_true", help="only the real songs' agreement (the scores there stay)")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "midi.json"
    if args.speed_only:
        results = json.loads(out.read_text()) if out.is_file() else {}
        results["speed_memory"] = speed(args.threads)
        atomic_write_bytes(out, (json.dumps(results, indent=1) + "\n").encode())
        print(json.dumps(results["speed_memory"], indent=1))
        return
    set_threads(args.threads)
    pitch = BasicPitch()
    engine = SeparationEngine(args.model, "cpu")
    if args.real:
        results = json.loads(out.read_text()) if out.is_file() else {}
        real = results.setdefault("real_songs", {})
        real[args.model] = real_songs(engine, pitch, args.model)
        atomic_write_bytes(out, (json.dumps(results, indent=1) + "\n").encode())
        print(json.dumps(real[args.model]["median_agreement_with_true_stem_notes"], indent=1))
        return
    rows = []
    seed = 0
    with tempfile.TemporaryDirectory() as tmp:
        while len(rows) < args.songs:
            made = song(seed, args.seconds, Path(tmp))
            seed += 1
            if made is None:
                continue
            stems = made["audio"]
            mix = sum(stems.values())
            separated = engine.separate_array(mix, RATE, SeparateOptions(model=args.model))
            separated = dict(zip(engine.sources, separated))
            truth = made["truth"]
            scores = {}
            for label, source in (("true stems", stems), ("separated stems", separated)):
                found = transcribe(source, pitch)
                scored = {part: matched(found[part], truth[part]) for part in truth}  # (precision, recall, F)
                scores[label] = {part: round(f, 3) for part, (_, _, f) in scored.items()}
                scores[label + " (precision, recall)"] = {
                    part: [round(p, 3), round(r, 3)] for part, (p, r, _) in scored.items()
                }
            pitched = [(n.start, n.pitch) for n in pitch.transcribe(mix, RATE)]
            hits = drum_hits(mix, RATE)
            scores["the mix itself"] = {
                "pitched": round(f_measure(pitched, sorted(truth["melody"] + truth["bass"] + truth["chords"])), 3),
                "kick": round(f_measure([(n.start, 36) for n in hits if n.pitch == 36], truth["kick"]), 3),
                "snare": round(f_measure([(n.start, 38) for n in hits if n.pitch == 38], truth["snare"]), 3),
            }
            rows.append({"seed": made["seed"], "bpm": made["bpm"], "scores": scores})
            print(json.dumps(rows[-1]), flush=True)
    parts = ["melody", "bass", "chords", "kick", "snare"]
    median = {
        label: {part: round(float(np.median([r["scores"][label][part] for r in rows])), 3) for part in parts}
        for label in ("true stems", "separated stems")
    }
    median["the mix itself"] = {
        part: round(float(np.median([r["scores"]["the mix itself"][part] for r in rows])), 3)
        for part in ("pitched", "kick", "snare")
    }
    sep, true = median["separated stems"], median["true stems"]
    targets = {
        "separated_within_0.05_of_true": {part: sep[part] >= true[part] - 0.05 for part in parts},
        "melody_and_bass_at_least_0.75": {part: sep[part] >= 0.75 for part in ("melody", "bass")},
        "kick_and_snare_at_least_0.8": {part: sep[part] >= 0.8 for part in ("kick", "snare")},
    }
    results = {
        "songs": len(rows),
        "seconds_each": args.seconds,
        "model": args.model,
        "transcriber": "Basic Pitch 0.4.0 (ONNX) for pitched stems; spectral-flux onsets by band for drums",
        "median_f_measure": median,
        "targets": targets,
        "per_song": rows,
        "speed_memory": None if args.no_speed else speed(args.threads),
        "cpu_peak_mb_of_this_run": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # the real songs' scores (--real) stay
        "real_songs": (json.loads(out.read_text()) if out.is_file() else {}).get("real_songs", {}),
    }
    atomic_write_bytes(out, (json.dumps(results, indent=1) + "\n").encode())
    print(json.dumps({k: results[k] for k in ("median_f_measure", "targets", "speed_memory")}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
