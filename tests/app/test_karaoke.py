"""Karaoke in the app, through the real window (offscreen): the lyrics' lane under the stems, its words dragged and
the drags undone, tap to sync while the song plays, alignment as a job, the lyrics kept in the project, the karaoke
view wiping the current line, and Export → Karaoke."""

# ruff: noqa: F811 - tests take the `window` fixture imported from test_app by name
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import screenshot_path, song
from test_app import window  # noqa: F401 - the app's own window fixture

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, Qt  # noqa: E402

from stemdesk.app.lyrics_lane import LyricsLane  # noqa: E402
from stemdesk.app.window import MainWindow  # noqa: E402
from stemdesk.jobs.queue import DONE, Job  # noqa: E402
from stemdesk.karaoke.model import Line, Lyrics, Word  # noqa: E402

NAMES = ["vocals", "drums", "bass", "other"]


def open_song(window: MainWindow, tmp_path: Path, seconds: float = 12.0) -> Path:
    path = tmp_path / "song.wav"
    sf.write(str(path), song(seconds), 44100, subtype="PCM_16")
    assert window.open_song(path)
    return path


def separate(qtbot, window: MainWindow) -> Job:
    with qtbot.waitSignal(window.separation_finished, timeout=120_000) as blocker:
        window.separate()
    job = blocker.args[0]
    assert job.status == DONE, job.error
    return job


def hand_made() -> Lyrics:
    """Two timed lines, the second sung by the backing voices, and a third the aligner was unsure of."""
    return Lyrics(
        [
            Line([Word("Hello", 1.0, 1.6), Word("bright", 1.7, 2.3), Word("world", 2.4, 3.2)], 0, "lead", 0.9),
            Line([Word("sing", 4.0, 4.5), Word("along", 4.6, 5.4)], 0, "backing", 0.8),
            Line([Word("la", 9.0, 9.4), Word("la", 9.5, 9.9)], 1, "lead", 0.2),
        ],
        title="Test song",
    )


def lane_of(window: MainWindow) -> tuple[LyricsLane, int, int]:
    canvas = window.timeline.canvas
    band = next(band for band in canvas._bands() if band[0].name == "lyrics")
    assert isinstance(band[0], LyricsLane)
    return band[0], band[1], band[2]


def test_the_lyrics_lane_shows_the_words_under_the_stems_and_a_dragged_word_moves_and_undoes(qtbot, window, tmp_path):
    open_song(window, tmp_path)
    separate(qtbot, window)
    window.lyrics_flow.edit("Set lyrics", None, hand_made())
    canvas = window.timeline.canvas
    assert [lane.name for lane in canvas.stack()] == ["mix", *NAMES, "lyrics"]
    lane, top, height = lane_of(window)
    assert top > max(canvas.lane_top(n) or 0 for n in NAMES)  # under the stems
    world = lane.word_rect(canvas, 0, 2, top, height)
    assert world is not None
    image = canvas.grab().toImage()
    inside = image.pixelColor(int(world.center().x()), int(world.bottom() - 3))
    assert inside.blue() > inside.red()  # a lead word's box is blue-grey
    unsure = lane.word_rect(canvas, 2, 0, top, height)
    assert unsure is not None
    amber = image.pixelColor(int(unsure.center().x()), int(unsure.bottom() - 3))
    assert amber.red() > amber.blue() + 60, amber.name()  # the unsure line is amber

    # drag the right edge of "world" 0.5 s later: its box grows, its end moves, nothing else does
    seconds_per_px = canvas.spp / canvas.rate
    edge = QPoint(int(world.right()) - 2, int(world.center().y()))
    pixels = int(round(0.5 / seconds_per_px))
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=edge)
    qtbot.mouseMove(canvas, pos=edge + QPoint(pixels // 2, 0))
    qtbot.mouseMove(canvas, pos=edge + QPoint(pixels, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=edge + QPoint(pixels, 0))
    word = window.project.lyrics.lines[0].words[2]
    assert word.start == 2.4 and word.end == pytest.approx(3.7, abs=2 * seconds_per_px)
    moved = lane.word_rect(canvas, 0, 2, top, height)
    assert moved is not None and moved.right() == pytest.approx(world.right() + pixels, abs=2)
    assert window.dirty and window.undo.undoText().startswith('Move the end of "world"')
    window.undo.undo()
    assert window.project.lyrics.lines[0].words[2].end == 3.2
    assert lane.word_rect(canvas, 0, 2, top, height) == world

    # Ctrl+drag a word: the whole line moves, the line is the user's now (no longer unsure)
    la = lane.word_rect(canvas, 2, 1, top, height)
    assert la is not None
    middle = la.center().toPoint()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, pos=middle)
    qtbot.mouseMove(canvas, pos=middle - QPoint(pixels * 2, 0))
    qtbot.mouseRelease(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, middle - QPoint(pixels * 2, 0)
    )
    line = window.project.lyrics.lines[2]
    assert [w.start for w in line.words] == pytest.approx([8.0, 8.5], abs=3 * seconds_per_px)
    assert line.confidence is None and window.playhead_seconds() == 0.0  # a drag on a word does not seek
    # the line's handle moves it too; then undo twice: back where the hand put it
    handle = lane.handle_rect(canvas, 1, top)
    assert handle is not None
    grip = handle.center().toPoint()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=grip)
    qtbot.mouseMove(canvas, pos=grip + QPoint(pixels, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=grip + QPoint(pixels, 0))
    assert window.project.lyrics.lines[1].start == pytest.approx(4.5, abs=2 * seconds_per_px)
    window.undo.undo()
    window.undo.undo()
    assert window.project.lyrics == hand_made()
    canvas.grab().save(screenshot_path("karaoke-lane.png"))


def test_lyrics_pasted_as_lrc_are_timed_and_saved_in_the_project_and_opened_again(qtbot, window, tmp_path):
    open_song(window, tmp_path)
    assert window.lyrics_flow.set_text("[00:01.00]Hello bright world\n[00:04.00]sing along\n")
    lyrics = window.project.lyrics
    assert [line.text for line in lyrics.lines] == ["Hello bright world", "sing along"]
    assert lyrics.lines[0].start == pytest.approx(1.0)
    saved = window.save_project(path=tmp_path / "with lyrics")
    assert saved is not None and not window.dirty
    window.lyrics_flow.remove()
    assert window.timeline.canvas.below == [] and window.project.lyrics is None

    again = MainWindow(dict(window.settings), ask=False)
    qtbot.addWidget(again)
    try:
        assert again.open_project(saved)
        assert again.project.lyrics == lyrics
        assert [lane.name for lane in again.timeline.canvas.stack()][-1] == "lyrics"
        assert again.lyrics_flow.lane is not None and again.lyrics_flow.lane.lyrics == lyrics
    finally:
        again.shutdown()


def test_a_project_without_lyrics_is_written_as_format_1_and_bad_lyrics_in_a_project_are_refused(tmp_path):
    from stemdesk.session import project as projects

    plain = projects.Project(source="/x.wav")
    assert plain.to_dict()["stemdesk_project"] == 1 and "lyrics" not in plain.to_dict()
    data = projects.Project(source="/x.wav", lyrics=hand_made()).to_dict()
    assert data["stemdesk_project"] == 2 and projects.Project.from_dict(data).lyrics == hand_made()
    data["lyrics"]["lines"][0]["words"][0]["start"] = -3
    with pytest.raises(projects.ProjectError, match="bad lyrics"):
        projects.Project.from_dict(data)


def test_tap_to_sync_sets_the_next_words_start_at_the_playhead_while_playing(qtbot, window, tmp_path):
    if not os.environ.get("PULSE_SERVER"):
        pytest.skip("pulseaudio is not installed (scripts/setup.sh --test installs it)")
    open_song(window, tmp_path)
    separate(qtbot, window)
    untimed = Lyrics([Line([Word("one"), Word("two")]), Line([Word("three"), Word("four")])])
    window.lyrics_flow.edit("Set lyrics", None, untimed)
    window.player_toggle()
    qtbot.waitUntil(lambda: window.player.position_seconds() > 0.5, timeout=10_000)
    assert window.player.state == "playing"
    taps = []
    for _ in range(2):
        before = window.player.position_seconds()
        qtbot.keyClick(window.timeline.canvas, Qt.Key.Key_T)
        taps.append((before, window.player.position_seconds()))
        qtbot.wait(300)
    before = window.player.position_seconds()
    qtbot.keyClick(window.timeline.canvas, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)  # the next line
    line_tap = (before, window.player.position_seconds())
    window.player_toggle()
    words = window.project.lyrics.words
    for word, (a, b) in zip(words, taps):
        assert a - 0.05 <= word.start <= b + 0.05
    assert words[0].end == words[1].start  # the word before ends where the tapped one starts
    assert line_tap[0] - 0.05 <= words[2].start <= line_tap[1] + 0.05 and words[3].start is None
    assert words[1].end <= words[2].start
    window.undo.undo()  # each tap is one step
    assert window.project.lyrics.words[2].start is None and window.project.lyrics.words[1].start is not None


def test_align_runs_as_a_job_on_the_vocals_and_times_every_word(qtbot, window, tmp_path):
    path = tmp_path / "sung.wav"
    rate = 44100
    t = np.arange(8 * rate) / rate
    voiced = (np.sin(2 * np.pi * 1.0 * t) > -0.2).astype(np.float32)  # a tone sung in bursts, one a second
    tone = 0.4 * np.sin(2 * np.pi * 220 * t) * voiced
    sf.write(str(path), np.stack([tone, tone], 1), rate, subtype="PCM_16")
    assert window.open_song(path)
    separate(qtbot, window)
    window.lyrics_flow.edit("Set lyrics", None, Lyrics([Line([Word("la"), Word("la")]), Line([Word("da")])]))
    with qtbot.waitSignal(window.job_finished, timeout=120_000) as blocker:
        job = window.lyrics_flow.align()
    assert job is not None and blocker.args[0].status == DONE, blocker.args[0].error
    lyrics = window.project.lyrics
    assert lyrics.timed and all(0 <= w.start <= w.end <= 8.0 for w in lyrics.words)
    assert window.undo.undoText() == "Align the lyrics on vocals"
    window.undo.undo()
    assert not window.project.lyrics.timed


def colour_share(image, rect, rgb: tuple[int, int, int], tolerance: int = 40) -> float:
    """The share of pixels in ``rect`` within ``tolerance`` of ``rgb`` on every channel."""
    hits = total = 0
    for x in range(int(rect.left()), int(rect.right()), 2):
        for y in range(int(rect.top()), int(rect.bottom()), 2):
            c = image.pixelColor(x, y)
            total += 1
            hits += all(abs(a - b) <= tolerance for a, b in zip((c.red(), c.green(), c.blue()), rgb))
    return hits / max(1, total)


def test_the_karaoke_screen_wipes_the_current_line_plays_the_karaoke_mix_and_changes_key(qtbot, window, tmp_path):
    from PySide6.QtCore import QRectF

    from stemdesk.karaoke import screen

    open_song(window, tmp_path)
    separate(qtbot, window)
    window.lyrics_flow.edit("Set lyrics", None, hand_made())
    karaoke = window.karaoke_flow.open_view()
    qtbot.waitExposed(karaoke)
    # the karaoke mix plays: the vocals muted, one undoable step
    assert window.project.mix.channels["vocals"].mute and window.undo.undoText() == "Apply preset karaoke"
    assert window.player.source.mix is window.project.mix
    view = karaoke.view
    view.show_time(2.0)  # "Hello" sung, "bright" half sung, "world" not yet
    image = view.grab().toImage()
    now = view.plan().at(2.0)
    current = now.current
    assert current is not None and current.line.text == "Hello bright world"
    x, baseline, font = view.row_geometry(current, 0)
    edge = view.sung_x(current, 0, 2.0)
    size = current.size
    sung = QRectF(x, baseline - size * 0.8, edge - x - 2, size * 0.8)
    unsung = QRectF(edge + 4, baseline - size * 0.8, view.sung_x(current, 0, 9.0) - edge - 6, size * 0.8)
    assert colour_share(image, sung, screen.LEAD_SUNG) > 0.15  # the sung part in the highlight colour
    assert colour_share(image, unsung, screen.LEAD_SUNG) == 0.0
    assert colour_share(image, unsung, screen.LEAD_UNSUNG) > 0.15  # the rest still white
    nxt = now.next
    assert nxt is not None and nxt.backing  # the backing part's line waits in its own colour
    x2, baseline2, _ = view.row_geometry(nxt, 0)
    waiting = QRectF(x2, baseline2 - nxt.size * 0.8, view.sung_x(nxt, 0, 99.0) - x2, nxt.size * 0.8)
    assert colour_share(image, waiting, screen.BACKING_NEXT) > 0.15
    image.save(screenshot_path("karaoke-screen.png"))
    # the key box is the mixer's: a change is an undoable edit, and the player takes it
    karaoke.key.setValue(-3)
    assert window.project.mix.semitones == -3 and window.mixer.key.value() == -3
    assert window.player.source.mix.semitones == -3
    window.undo.undo()
    assert window.project.mix.semitones == 0 and karaoke.key.value() == 0


def test_the_karaoke_screen_counts_in_a_line_after_a_long_gap(qtbot, window, tmp_path):
    from stemdesk.karaoke import screen

    open_song(window, tmp_path, seconds=16.0)
    lyrics = Lyrics([Line([Word("first", 1.0, 2.0)]), Line([Word("after", 12.0, 12.6), Word("gap", 12.7, 13.3)])])
    window.lyrics_flow.edit("Set lyrics", None, lyrics)
    view = window.karaoke_flow.open_view().view
    view.resize(960, 540)
    view.show_time(10.5)  # 1.5 s before "after": two dots left
    assert view.plan().at(10.5).count_in == 2
    image = view.grab().toImage()
    shown = next(s for s in view.plan().at(10.5).slots if s is not None and s.count_in)
    y = view.slot_top(shown.slot) - view.height() / 60 * 3
    from PySide6.QtCore import QRectF

    dots = QRectF(view.width() / 2 - 60, y - 10, 120, 20)
    assert colour_share(image, dots, screen.COUNT_IN_COLOUR) > 0.05
    view.show_time(12.9)  # no dots while the line is sung
    assert view.plan().at(12.9).count_in == 0
    image.save(screenshot_path("karaoke-count-in.png"))


def test_export_karaoke_writes_the_karaoke_mix_and_the_files_as_a_job(qtbot, window, tmp_path):
    from stemdesk.karaoke.lyrics import read_lyrics

    open_song(window, tmp_path)
    separate(qtbot, window)
    window.lyrics_flow.edit("Set lyrics", None, hand_made())
    out = tmp_path / "karaoke"
    with qtbot.waitSignal(window.job_finished, timeout=120_000) as blocker:
        job = window.karaoke_flow.export(out, ["lrc", "ass", "ultrastar", "cdg"])
    assert job is not None and blocker.args[0].status == DONE, blocker.args[0].error
    files = job.result
    assert {"mix", "lrc", "ass", "ultrastar", "cdg", "mp3"} <= set(files) and all(p.is_file() for p in files.values())
    # the karaoke mix is the stems without the vocals
    mix, _ = sf.read(str(files["mix"]), dtype="float64", always_2d=True)
    stems = {n: sf.read(str(p), dtype="float64", always_2d=True)[0] for n, p in window.stems.items()}
    backing = stems["drums"] + stems["bass"] + stems["other"]
    assert np.abs(mix - backing[: len(mix)]).max() < 1e-3
    # the LRC read back has every word at the time the lane shows
    again = read_lyrics(files["lrc"])
    assert [w.text for w in again.words] == [w.text for w in hand_made().words]
    assert [w.start for w in again.words] == pytest.approx([w.start for w in hand_made().words], abs=0.011)
    assert "Hello" in files["ass"].read_text(encoding="utf-8")
    # untimed lyrics are refused before any job, saying what to do
    window.lyrics_flow.edit("Set lyrics", window.project.lyrics, Lyrics([Line([Word("no"), Word("time")])]))
    assert window.karaoke_flow.export(out) is None
    assert "Align the lyrics" in window.last_error[1]
