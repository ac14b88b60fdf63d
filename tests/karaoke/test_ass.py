"""The ASS karaoke file, read by a real reader: libass (through ffmpeg's ass filter) draws it, and the tests look at
the pixels: the line is there while it is sung, its fill moves, the next line shows, the screen is empty in a gap
except for the count-in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import karaoke_lyrics, sung_line

from stemdesk.karaoke import screen
from stemdesk.karaoke.ass import Geometry, ass_text, plan_for, write_ass
from stemdesk.karaoke.model import Line, Lyrics, Word

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (with libass) is not installed")
WIDTH, HEIGHT = 1280, 720
BACKGROUND = (16, 20, 64)


def frame(ass: Path, t: float, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """libass's picture of ``ass`` at ``t`` seconds over the background colour, (height, width, 3) uint8."""
    colour = "0x{:02x}{:02x}{:02x}".format(*BACKGROUND)
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r=100:d={t + 0.2}",
         "-vf", f"ass={ass}", "-ss", f"{t}", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(done.stdout, np.uint8).reshape(height, width, 3)


def ink(picture: np.ndarray) -> np.ndarray:
    """Pixels that are not the background."""
    return np.abs(picture.astype(int) - BACKGROUND).sum(axis=2) > 60


def coloured(picture: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.abs(picture.astype(int) - rgb).sum(axis=2) < 60


def band(shown: screen.ShownLine, geometry: Geometry) -> slice:
    top = geometry.row_top(shown, 0)
    return slice(int(top), int(top + geometry.row_height(shown.size) * len(shown.rows)))


def test_the_line_fills_as_sung_the_next_line_waits_and_gaps_are_empty(tmp_path):
    lyrics = karaoke_lyrics()
    path = write_ass(lyrics, tmp_path / "song.ass", width=WIDTH, height=HEIGHT)
    plan, geometry = plan_for(lyrics, WIDTH, HEIGHT)
    first, second = plan.lines[0], plan.lines[1]
    assert (first.slot, second.slot) == (0, 1)
    early, late = frame(path, 6.3), frame(path, 7.9)
    rows = band(first, geometry)
    for picture in (early, late):
        assert ink(picture)[rows].sum() > 2000  # the current line is there
        assert coloured(picture[band(second, geometry)], screen.LEAD_NEXT).sum() > 1000  # the next line, dimmer
    gold_early = coloured(early[rows], screen.LEAD_SUNG).sum()
    gold_late = coloured(late[rows], screen.LEAD_SUNG).sum()
    assert 0 < gold_early < gold_late / 3  # the fill moved on
    # where the gold is, left to right: the fill's right edge moves right
    edge = [np.nonzero(coloured(picture[rows], screen.LEAD_SUNG).any(axis=0))[0].max() for picture in (early, late)]
    assert edge[0] + 200 < edge[1]
    # a backing line is sung in the backing colours
    backing = plan.lines[2]
    assert coloured(frame(path, 14.4)[band(backing, geometry)], screen.BACKING_SUNG).sum() > 1000
    # in the long gap nothing is on screen; before the line after it, the count-in's dots
    assert ink(frame(path, 22.0)).sum() == 0
    counting = frame(path, 27.5)  # 2.5 s before the line: three dots
    assert coloured(counting[: int(geometry.row_top(plan.lines[-1], 0))], screen.COUNT_IN_COLOUR).sum() > 300
    # the title card at the start
    assert ink(frame(path, 1.0)).sum() > 2000


def test_karaoke_durations_add_up_to_each_row_exactly():
    lyrics = Lyrics([sung_line("one two three four", 3.337, length=0.283, gap=0.071)])
    text = ass_text(lyrics)
    events = [line for line in text.splitlines() if line.startswith("Dialogue: 1,")]
    assert len(events) == 1
    fields = events[0].split(",", 9)
    start = fields[1]
    h, m, s = start.split(":")
    origin = round((int(h) * 3600 + int(m) * 60 + float(s)) * 100)
    durations = [int(value) for value in re.findall(r"\\kf?(\d+)", fields[9])]
    line = lyrics.lines[0]
    assert line.start is not None and line.end is not None
    assert origin + sum(durations) == round(line.end * 100)
    assert sum(durations[1:]) == round(line.end * 100) - round(line.start * 100)  # after the lead-in
    assert len(re.findall(r"\\kf\d+", fields[9])) == 4  # one fill per word


def test_untimed_words_are_refused_with_the_word_named(tmp_path):
    lyrics = Lyrics([Line([Word("sung", 1.0, 1.5), Word("lost")])])
    with pytest.raises(screen.LyricsNotTimed, match='"lost"'):
        write_ass(lyrics, tmp_path / "song.ass")
    assert not list(tmp_path.iterdir())


def test_every_word_is_written_even_emoji_rtl_and_braces(tmp_path):
    words = ["Hello", "🎤🎶", "שלום", "مرحبا", "{curly}", "back\\Nslash", "日本語"]
    lyrics = Lyrics([Line([Word(word, 5.0 + i * 0.5, 5.4 + i * 0.5) for i, word in enumerate(words)])])
    path = write_ass(lyrics, tmp_path / "song.ass", width=WIDTH, height=HEIGHT)
    text = path.read_text(encoding="utf-8")
    shown = re.sub(r"\{[^}]*\}", "", "".join(line for line in text.splitlines() if line.startswith("Dialogue: 1,")))
    for word in ["Hello", "🎤🎶", "שלום", "مرحبا", "｛curly｝", "back\\\u2060Nslash", "日本語"]:
        assert word in shown
    assert ink(frame(path, 6.0)).sum() > 1000  # libass draws it


def test_a_line_too_long_for_the_screen_is_wrapped_and_shrunk_never_cut(tmp_path):
    long = " ".join(["supercalifragilistic", "and"] * 12) + " " + "x" * 120
    lyrics = Lyrics([sung_line(long, 5.0, length=0.2, gap=0.02)])
    plan, geometry = plan_for(lyrics, WIDTH, HEIGHT)
    layout = geometry.layout()
    assert len(plan.lines) > 1  # more than one screen's worth
    words = [piece.text for shown in plan.lines for piece in shown.pieces]
    assert "".join(words) == long.replace(" ", "")  # every letter, in order
    for shown in plan.lines:
        assert len(shown.rows) <= layout.rows_at(shown.size)
        for row in shown.rows:
            assert layout.measure(screen.row_text(row), shown.size) <= layout.width
    path = write_ass(lyrics, tmp_path / "long.ass", width=WIDTH, height=HEIGHT)
    for shown in plan.lines:
        picture = ink(frame(path, (shown.active + shown.gone) / 2))
        assert picture.sum() > 1000
        columns = np.nonzero(picture.any(axis=0))[0]
        assert columns.min() > WIDTH * 0.05 and columns.max() < WIDTH * 0.95  # inside the margins


def test_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    import errno
    import os

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_ass(karaoke_lyrics(), tmp_path / "song.ass")
    assert not list(tmp_path.iterdir())
