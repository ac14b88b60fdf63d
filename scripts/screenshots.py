"""Screenshots of the main window with a separated song, at 1280×800 and 1920×1080, with its vocals split into
lead and backing (app-split.png), and of the Models dock's model catalog (models-catalog.png).

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Uses a 40-second excerpt of a CC0 song from ../shared/data (or the demo song), separated with the default model.
Also reports the longest stall of the UI thread during the separation (a 5 ms timer's largest gap).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cc0-efree"
NAMES = ["vocals", "drums", "bass", "other"]


def excerpt(folder: Path, seconds: float = 40.0) -> Path:
    path = folder / "Everything is Free - excerpt.wav"
    songs = sorted(DATA.glob("*/vocals.ogg")) if DATA.is_dir() else []
    if songs:
        source = songs[1 % len(songs)].parent
        mix = sum(
            sf.read(
                str(source / f"{n}.ogg"), start=30 * 44100, frames=int(seconds * 44100), dtype="float64", always_2d=True
            )[0]
            for n in NAMES
        )
        sf.write(str(path), np.clip(mix, -1, 1), 44100, subtype="PCM_16")
        return path
    from stemdesk.io.demo import make_demo

    return make_demo(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--model", default="stemdesk-4stem")
    args = parser.parse_args()
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from stemdesk.app.window import MainWindow
    from stemdesk.io import settings as settings_store

    work = Path(tempfile.mkdtemp(prefix="stemdesk-shots-"))
    values = dict(settings_store.DEFAULTS, output_folder=str(work / "stems"), threads=1)
    window = MainWindow(values, ask=False)
    window.resize(1280, 800)
    window.show()
    window.open_song(excerpt(work))
    window.model_box.setCurrentText(args.model)

    stalls = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        stalls.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(5)
    done = []
    window.separation_finished.connect(done.append)
    job = window.separate()
    deadline = time.monotonic() + 600
    while not done and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    timer.stop()
    if job.status != "done":
        raise SystemExit(f"separation {job.status}: {job.error}")

    window.mixer.strips["vocals"].fader.setValue(-35)
    window.mixer.strips["drums"].fader.setValue(20)
    window.set_loop((12.0, 20.0))
    window.timeline.canvas.selection = (4.0, 9.0)
    window.timeline.canvas.toggle_spectrogram("other")
    window.seek(14.2)
    end = time.monotonic() + 8
    while time.monotonic() < end and window.timeline.lane("other").spectrogram is None:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    args.out.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (1920, 1080)):
        window.resize(width, height)
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)
        window.timeline.canvas.fit()
        app.processEvents()
        path = args.out / f"main-{width}x{height}.png"
        window.grab().save(str(path), "PNG", 0)  # quality 0: the PNG compressed most (the repository has a size budget)
        print(path)
    # the vocals split into lead and backing by the shipped split model, karaoke keeping the backing vocals
    window.resize(1280, 800)
    window.separation.split("vocals", "stemdesk-vocals-leadback")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        "vocals/lead" in window.stems and not any(lane.busy for lane in window.timeline.canvas.lanes)
    ):
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    if "vocals/lead" not in window.stems:
        raise SystemExit("the split of the vocals did not finish")
    window.mixer.preset.setCurrentText("karaoke-backing")
    window.mixer.apply_preset()
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    window.timeline.canvas.fit()
    app.processEvents()
    path = args.out / "app-split.png"
    window.grab().save(str(path), "PNG", 0)
    print(path)
    # the Models dock's Catalog tab, floated to a readable size: each model's stems, download, licence and speed
    dock = window.docks["Models"]
    dock.setFloating(True)
    dock.resize(900, 520)
    window.models_panel.select_entry("mel-roformer-karaoke")
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    path = args.out / "models-catalog.png"
    dock.grab().save(str(path), "PNG", 0)
    print(path)
    report = {
        "longest_ui_stall_ms": max(stalls) if stalls else None,
        "beats": len(stalls),
        "separation_seconds": round(job.finished - job.started, 2),
        "platform": app.platformName(),
    }
    print(json.dumps(report))
    out = ROOT / "benchmarks" / "results" / "ui_stall.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    window.shutdown()
    shutil.rmtree(work, ignore_errors=True)  # the song and its stems: nothing left in the temporary folder


if __name__ == "__main__":
    main()
