"""The app's responsiveness, through the real window: how long the UI thread stalls while a song separates, while the
mix bounces and while it plays, and how soon a fader move is heard on a real audio device.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/ui.py [--seconds 60] [--moves 8]

- Stall: a 5 ms QTimer on the UI thread; its largest gap, minus the 5 ms, is the longest the app could not react.
  Baseline in the same run: the same timer while the app sits idle. Target: ≤ 50 ms during a separation (default
  model, one thread) and a bounce (24-bit FLAC, effects on).
- Fader heard: a private PulseAudio server with a null sink is the device; `parec` records its monitor in small
  reads, each stamped on arrival. While the song plays, the master fader goes to −∞ dB (as a user's edit, with undo)
  and back; the latency is from the edit to the first recorded sample of the fall, taken as heard when it arrived
  (recording adds a few ms, so this is an upper bound). Baseline in the same run: the audio the sink holds ahead of
  the playhead (its buffer), which no edit can overtake. Target: ≤ 50 ms.
Uses an excerpt of a CC0 song from ../shared/data (a test signal when absent). Results: benchmarks/results/ui.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from helpers import private_pulse  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
SINK = "stemdesk_bench"
RATE = 44100


def start_pulse(runtime: Path, sink: str = SINK) -> subprocess.Popen | None:
    """The tests' private PulseAudio server with a null sink (never the desktop's own), found through PULSE_SERVER."""
    if shutil.which("parec") is None:
        return None
    runtime.mkdir(parents=True, exist_ok=True)
    server = private_pulse(runtime, sink)
    if (runtime / "native").exists():
        os.environ["PULSE_SERVER"] = f"unix:{runtime / 'native'}"
    return server


class Recorder:
    """The null sink's monitor, read in small pieces, each stamped with time.monotonic() when it arrived."""

    def __init__(self, sink: str = SINK) -> None:
        self.pieces: list[tuple[float, np.ndarray]] = []
        self.process = subprocess.Popen(
            ["parec", "-d", f"{sink}.monitor", "--format=float32le", f"--rate={RATE}", "--channels=2", "--raw"]
            + ["--latency-msec=5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        pending = b""
        while chunk := self.process.stdout.read1(1024):
            now = time.monotonic()
            pending += chunk
            usable = len(pending) // 8 * 8
            self.pieces.append((now, np.frombuffer(pending[:usable], "<f4").reshape(-1, 2)))
            pending = pending[usable:]

    def since(self, moment: float) -> list[tuple[float, np.ndarray]]:
        return [(t, a) for t, a in list(self.pieces) if t >= moment]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def excerpt(folder: Path, seconds: float) -> Path:
    path = folder / "song.wav"
    stems = sorted(DATA.glob("*/vocals.ogg")) if DATA.is_dir() else []
    if stems:
        parts = [
            sf.read(str(stems[0].parent / f"{n}.ogg"), start=30 * RATE, frames=int(seconds * RATE), always_2d=True)[0]
            for n in ("vocals", "drums", "bass", "other")
        ]
        sf.write(str(path), np.clip(sum(parts), -1, 1), RATE, subtype="PCM_16")
    else:
        t = np.arange(int(seconds * RATE)) / RATE
        tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
        sf.write(str(path), np.stack([tone, tone], 1), RATE, subtype="PCM_16")
    return path


def fall_heard(pieces: list[tuple[float, np.ndarray]], level: float, window: int = 220) -> float | None:
    """When the recording fell 30 dB below ``level`` and stayed there for 50 ms: the arrival time of that sample
    (each piece's samples arrived at its stamp, the last one then, the earlier ones 1/RATE apart before it)."""
    if not pieces or level <= 0:
        return None
    audio = np.concatenate([a for _, a in pieces])
    times = np.concatenate([t - (len(a) - 1 - np.arange(len(a))) / RATE for t, a in pieces])
    count = len(audio) // window
    rms = np.sqrt(np.mean(np.square(audio[: count * window].reshape(count, window, 2)), axis=(1, 2)))
    quiet = rms < level * 10 ** (-30 / 20)
    hold = int(0.05 * RATE / window)
    for i in range(count - hold):
        if quiet[i : i + hold].all():
            return float(times[i * window])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the song excerpt")
    parser.add_argument("--moves", type=int, default=8, help="fader moves to time")
    parser.add_argument("--model", default="stemdesk-4stem")
    parser.add_argument("--buffer-ms", type=int, default=80, help="the audio_buffer_ms setting (20, 40, 80 or 160)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="stemdesk-ui-bench-"))
    os.environ["XDG_STATE_HOME"] = str(work / "state")  # no autosave of a real session is touched
    server = start_pulse(work / "pulse")
    try:
        report = run(args, work)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))
    out = ROOT / "benchmarks" / "results" / "ui.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


def run(args, work: Path) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from stemdesk.app.theme import apply_dark_theme
    from stemdesk.app.window import MainWindow
    from stemdesk.io import settings as settings_store
    from stemdesk.mixer.effects import Effect
    from stemdesk.mixer.mix import FADER_RANGE

    app = QApplication.instance() or QApplication([])
    apply_dark_theme(app)
    values = dict(
        settings_store.DEFAULTS,
        output_folder=str(work / "stems"),
        threads=1,
        model=args.model,
        audio_buffer_ms=args.buffer_ms,
    )
    window = MainWindow(values, ask=False)
    window.resize(1280, 800)
    window.show()
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0] - 5)
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(5)

    def stall_while(until, limit: float = 900.0) -> float:
        gaps.clear()
        last[0] = clock.elapsed()
        deadline = time.monotonic() + limit
        while not until() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.001)
        return max(gaps, default=0.0)

    report: dict = {"song_seconds": args.seconds, "model": args.model, "platform": app.platformName()}
    window.open_song(excerpt(work, args.seconds))
    stall_while(lambda: not window.timeline.lane("mix").busy)
    started = time.monotonic()
    report["idle_stall_ms"] = stall_while(lambda: time.monotonic() > started + 3)
    finished: list = []
    window.separation_finished.connect(finished.append)
    job = window.separate()
    report["separation_stall_ms"] = stall_while(lambda: bool(finished))
    report["separation_seconds"] = round(job.finished - job.started, 2)
    mix = window.project.mix
    mix.channel("vocals").effects.append(Effect("compressor", {"threshold_db": -20.0, "ratio": 3.0}))
    mix.channel("other").effects.append(Effect("reverb", {"room_size": 0.5}))
    window.apply_mix(mix)
    done: list = []
    window.job_finished.connect(lambda j: done.append(j) if j.kind == "bounce" else None)
    window.settings["bit_depth"] = "24"
    bounce = window.bounce(work / "bounce.flac")
    report["bounce_stall_ms"] = stall_while(lambda: bool(done))
    report["bounce_seconds"] = round(bounce.finished - bounce.started, 2)
    if not window.player.available or shutil.which("parec") is None:
        report["fader"] = "no audio device (needs pulseaudio and parec)"
        window.shutdown()
        return report
    recorder = Recorder()
    window.player_toggle()
    started = time.monotonic()
    report["playback_stall_ms"] = stall_while(lambda: time.monotonic() > started + 4)
    # underruns: 5 ms of digital silence inside a stretch of music (the excerpt never falls silent)
    played = np.concatenate([a for _, a in recorder.since(started + 1.0)] or [np.zeros((0, 2), np.float32)])
    windows = len(played) // 220
    rms = np.sqrt(np.mean(np.square(played[: windows * 220].reshape(windows, 220, 2)), axis=(1, 2)))
    sounding = np.flatnonzero(rms > 1e-6)
    if len(sounding):
        inside = rms[sounding[0] : sounding[-1] + 1]
        seconds = len(inside) * 220 / RATE
        report["playback_silent_ms_per_second"] = round(float(np.sum(inside < 1e-9)) * 220 / RATE * 1000 / seconds, 1)
    sink = window.player.output.sink
    report["device_buffer_ms"] = round(sink.bufferSize() / (4 * 2 * RATE) * 1000, 1)
    latencies = []
    for _ in range(args.moves):
        window.mixer.edit("master/gain_db", 0.0)
        stall_while(lambda t=time.monotonic(): time.monotonic() > t + 0.6)
        before = recorder.since(time.monotonic() - 0.3)
        level = np.sqrt(np.mean(np.square(np.concatenate([a for _, a in before])))) if before else 0.0
        moved = time.monotonic()
        window.mixer.edit("master/gain_db", FADER_RANGE[0])  # -60 dB
        stall_while(lambda t=moved: time.monotonic() > t + 0.6)
        heard = fall_heard(recorder.since(moved), level)
        if heard is not None:
            latencies.append((heard - moved) * 1000)
    recorder.stop()
    window.player_toggle()
    report["fader_heard_ms"] = {
        "median": round(float(np.median(latencies)), 1) if latencies else None,
        "max": round(float(np.max(latencies)), 1) if latencies else None,
        "moves": len(latencies),
    }
    if latencies:
        report["fader_heard_vs_device_buffer"] = round(float(np.median(latencies)) / report["device_buffer_ms"], 2)
    window.shutdown()
    return report


if __name__ == "__main__":
    main()
