"""CD+G, read by a real reader: ffmpeg's cdgraphics decoder draws the packets, and the tests look at its pictures
(the words there while sung, the fill moving, the picture still between updates, nothing outside the screen); the
MP3 beside it starts in step; a 2-hour song is written in bounded memory."""

from __future__ import annotations

import errno
import math
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import karaoke_lyrics, screenshot_path, sung_line

from stemdesk.io.audio import write
from stemdesk.io.formats import OutputFormat
from stemdesk.karaoke import cdg, screen
from stemdesk.karaoke.model import Line, Lyrics, Word

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
INSTRUCTIONS = {cdg.MEMORY_PRESET, cdg.BORDER_PRESET, cdg.TILE_BLOCK, cdg.TILE_BLOCK_XOR}
INSTRUCTIONS |= {cdg.LOAD_COLOR_TABLE_LO, cdg.LOAD_COLOR_TABLE_HI}


def frames(path: Path, times: list[float]) -> dict[float, np.ndarray]:
    """ffmpeg's pictures of the CD+G file at ``times`` (300×216 RGB; 20 pictures a second, the nearest taken)."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", "fps=20", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    video = np.frombuffer(done, np.uint8).reshape(-1, cdg.HEIGHT, cdg.WIDTH, 3)
    return {t: video[min(len(video) - 1, round(t * 20))] for t in times}


def near(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    target = np.array(cdg._rgb12(rgb)) * 17  # 4 bits a channel, as the player shows them
    return np.abs(image.astype(int) - target).sum(axis=2) < 40


def ink(image: np.ndarray) -> np.ndarray:
    return ~near(image, screen.BACKGROUND_TOP)


def slot_rows(slot: int) -> slice:
    first, last = cdg.SLOT_REGIONS[slot]
    return slice(first * cdg.TILE_HEIGHT, last * cdg.TILE_HEIGHT)


def test_the_packets_are_cdg_commands_300_a_second(tmp_path):
    path = cdg.write_cdg(karaoke_lyrics(), tmp_path / "song.cdg", duration=35.0)
    data = path.read_bytes()
    assert len(data) == 35 * 300 * cdg.PACKET
    packets = np.frombuffer(data, np.uint8).reshape(-1, cdg.PACKET)
    used = packets[packets[:, 0] != 0]
    assert set(used[:, 0] & 0x3F) == {cdg.CDG_COMMAND}
    assert set(used[:, 1] & 0x3F) <= INSTRUCTIONS
    assert (used[:, 4:20] < 64).all()  # subcode data carries 6 bits a byte


def test_the_words_are_drawn_and_fill_as_sung(tmp_path):
    path = cdg.write_cdg(karaoke_lyrics(), tmp_path / "song.cdg", duration=35.0)
    at = frames(path, [1.5, 6.2, 7.2, 7.25, 7.9, 11.0, 22.0, 24.0, 27.5])
    lead_sung = [near(at[t][slot_rows(0)], screen.LEAD_SUNG).sum() for t in (6.2, 7.2, 7.9)]
    assert 0 < lead_sung[0] < lead_sung[1] < lead_sung[2]  # the fill moves on
    assert near(at[7.2][slot_rows(0)], screen.LEAD_UNSUNG).sum() > 50  # not all of it yet
    assert near(at[7.2][slot_rows(1)], screen.LEAD_NEXT).sum() > 300  # the next line waits, dimmer
    # between two updates the picture holds: the same pixels inked (no flicker, nothing half drawn)
    assert (ink(at[7.2]) == ink(at[7.25])).all()
    # the second line is the current one later, in the lead colours
    assert near(at[11.0][slot_rows(1)], screen.LEAD_SUNG).sum() > 300
    # the title card, and an empty, still screen in the long gap, then the count-in's dots
    assert near(at[1.5], screen.TITLE_COLOUR).sum() > 300
    assert ink(at[22.0]).sum() == 0 and (at[22.0] == at[24.0]).all()
    assert near(at[27.5], screen.COUNT_IN_COLOUR).sum() > 100
    from PIL import Image

    for t in (1.5, 7.2, 27.5):
        big = Image.fromarray(at[t]).resize((900, 648), Image.Resampling.NEAREST)
        big.save(screenshot_path(f"karaoke-cdg-{t:g}s.png"))


def test_the_pair_shares_its_name_and_the_mp3_starts_in_step(tmp_path):
    rate = 44100
    audio = np.zeros((2, rate * 4), np.float32)
    audio[:, rate : rate + 400] = np.random.default_rng(0).uniform(-0.8, 0.8, 400)  # a burst at 1.000 s
    mix = tmp_path / "mix.wav"
    write(mix, audio, rate, OutputFormat.parse("wav", "16"))
    lyrics = Lyrics([sung_line("one two", 1.0)])
    made = cdg.write_cdg_mp3(lyrics, mix, tmp_path / "Artist - Song")
    assert [p.name for p in made] == ["Artist - Song.cdg", "Artist - Song.mp3"]
    assert made[0].stat().st_size == 4 * 300 * cdg.PACKET
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(made[1]), "-f", "f32le", "-ac", "2", "-"], capture_output=True, check=True
    ).stdout
    back = np.frombuffer(decoded, np.float32).reshape(-1, 2).T
    assert back.shape[1] == audio.shape[1]  # LAME's delay and padding removed by the reader, as players do
    burst = int(np.argmax(np.abs(back[0]) > 0.2))
    assert abs(burst - rate) <= 8


def test_bad_input_is_refused_or_drawn_never_a_crash(tmp_path):
    with pytest.raises(screen.LyricsNotTimed, match='"later"'):
        cdg.write_cdg(Lyrics([Line([Word("later")])]), tmp_path / "x.cdg", duration=5.0)
    long = " ".join(["antidisestablishmentarianism", "and"] * 8) + " " + "y" * 90
    lyrics = Lyrics(
        [
            Line([Word(w, 5.0 + i * 0.4, 5.3 + i * 0.4) for i, w in enumerate(["🎤🎶", "שלום", "مرحبا", "日本語"])]),
            sung_line(long, 8.0, length=0.15, gap=0.02),
        ]
    )
    path = cdg.write_cdg(lyrics, tmp_path / "odd.cdg", duration=20.0)
    assert not [p for p in tmp_path.iterdir() if p.name != "odd.cdg"]
    at = frames(path, [5.5, 9.0, 12.0, 15.0])
    assert ink(at[5.5]).sum() > 200  # emoji and letters the font lacks drawn as its box, the rest as letters
    for image in at.values():
        inked = ink(image)
        assert not inked[:12].any() and not inked[-12:].any()  # nothing under the border
        assert not inked[:, :6].any() and not inked[:, -6:].any()


def test_a_two_hour_song_takes_bounded_memory(tmp_path):
    lines = [sung_line("a line every minute of the song", 60.0 * minute + 5) for minute in range(120)]
    tracemalloc.start()
    path = cdg.write_cdg(Lyrics(lines), tmp_path / "long.cdg", duration=7200.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert path.stat().st_size == 7200 * 300 * cdg.PACKET
    assert peak < 8 * 2**20  # the file is 52 MB; what is held at once is one line's tiles and a 1 MB buffer


def test_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    def full(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cdg._Sender, "flush", full)
    with pytest.raises(OSError, match="space"):
        cdg.write_cdg(karaoke_lyrics(), tmp_path / "song.cdg", duration=math.pi * 10)
    assert list(tmp_path.iterdir()) == []
