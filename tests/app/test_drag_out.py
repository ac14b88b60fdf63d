"""Stems dragged out of the timeline, as a user drags them into a DAW or a file manager: the real window on a real X
server (Xvfb), a mouse drag made with xdotool from a lane's header (the whole stem) and from inside the selection (that
region, written first with its certificate) to a second program that accepts file drops and records what it got."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import song
from test_desktop_start import needs_xcb_plugin, needs_xvfb, user_environment, xdotool, xvfb  # noqa: F401

from stemdesk.core.errors import StemDeskError
from stemdesk.export.regions import region_name, write_region

PEERS = Path(__file__).with_name("drag_peers.py")


def first_line(child: subprocess.Popen, seconds: float) -> dict:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(seconds)
    assert line and line[0].strip(), f"no answer from {child.args} (exit {child.poll()})"
    return json.loads(line[0])


def drag(display: str, start: list[int], end: list[int]) -> None:
    """Press at ``start``, move there in steps as a hand does, release at ``end``."""
    xdotool(display, "mousemove", "--sync", str(start[0]), str(start[1]))
    xdotool(display, "mousedown", "1")
    for step in range(1, 21):
        x = start[0] + (end[0] - start[0]) * step // 20
        y = start[1] + (end[1] - start[1]) * step // 20
        xdotool(display, "mousemove", str(x), str(y))
        time.sleep(0.05)
    time.sleep(0.3)
    xdotool(display, "mouseup", "1")


@pytest.mark.slow
@needs_xvfb
@needs_xcb_plugin
def test_a_stem_and_a_selected_region_dragged_out_arrive_as_files(xvfb, tmp_path):  # noqa: F811
    path = tmp_path / "song.wav"
    sf.write(str(path), song(4.0), 44100, subtype="PCM_16")
    received = tmp_path / "received.txt"
    env = user_environment(tmp_path, DISPLAY=xvfb, QT_QPA_PLATFORM="xcb")
    peers = []
    try:
        for args in (["source", str(path), str(tmp_path / "stems")], ["target", str(received)]):
            peers.append(
                subprocess.Popen(
                    [sys.executable, str(PEERS), *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        where = first_line(peers[0], 180)
        target = first_line(peers[1], 60)["centre"]
        # the vocals lane's header: the stem's own file, the one the certificate names
        drag(xvfb, where["header"], target)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not received.is_file():
            time.sleep(0.2)
        assert received.is_file(), "the drop target got nothing from the header"
        assert received.read_text().split() == [where["stems"]["vocals"]]
        # the selection (1-2 s) on the drums lane: that region of the drums, written before the drag
        drag(xvfb, where["selection"], target)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(received.read_text().splitlines()) < 2:
            time.sleep(0.2)
        lines = received.read_text().splitlines()
        assert len(lines) == 2, lines
        region = Path(lines[1])
        assert region.name == "song drums 1.00-2.00.wav" and region.parent.name == "regions"
        stem = sf.read(where["stems"]["drums"], dtype="int16", always_2d=True)[0]
        got, rate = sf.read(str(region), dtype="int16", always_2d=True)
        assert rate == 44100 and np.array_equal(got, stem[44100:88200])  # sample for sample
        cert = json.loads(region.with_name(region.name + ".certificate.json").read_text())
        assert cert["kind"] == "region" and cert["source"]["file"] == "drums.wav"
        assert (cert["settings"]["start_sample"], cert["settings"]["end_sample"]) == (44100, 88200)
    finally:
        for peer in peers:
            peer.kill()
            peer.communicate()


def test_a_region_outside_the_stems_or_too_short_is_refused_and_nothing_is_written(tmp_path):
    stem = tmp_path / "drums.wav"
    sf.write(str(stem), song(2.0), 44100, subtype="PCM_24")
    out = tmp_path / "regions" / region_name("song", "drums", 1.0, 3.0)
    with pytest.raises(StemDeskError, match="not inside the stems, which cover 0.00-2.00 s"):
        write_region(stem, 44100, 3 * 44100, out)
    with pytest.raises(StemDeskError, match="shorter than 10 ms"):
        write_region(stem, 100, 200, out)
    assert not (tmp_path / "regions").exists() or not any((tmp_path / "regions").iterdir())
    made = write_region(stem, 1000, 30000, tmp_path / "regions" / region_name("song", "vocals/lead", 0.02, 0.68))
    assert made.name == "song vocals lead 0.02-0.68.wav" and sf.info(str(made)).subtype == "PCM_24"
    whole = sf.read(str(stem), dtype="int32")[0]
    assert np.array_equal(sf.read(str(made), dtype="int32")[0], whole[1000:30000])
