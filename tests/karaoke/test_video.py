"""The karaoke video, read back by ffprobe and ffmpeg: H.264 and AAC streams, as long as the audio, the audio the mix
that went in, the words on screen where they are sung; screenshots at 720p and 1080p for a person to look at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import screenshot_path, sung_line

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import Cancelled, StemDeskError
from stemdesk.io.audio import write
from stemdesk.io.ffmpeg import FfmpegMissing
from stemdesk.io.formats import OutputFormat
from stemdesk.karaoke import screen
from stemdesk.karaoke.ass import plan_for
from stemdesk.karaoke.model import Line, Lyrics, Word
from stemdesk.karaoke.video import render_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
RATE = 44100
SECONDS = 9.3


def lyrics() -> Lyrics:
    return Lyrics(
        [
            sung_line("Here comes the sun and I say", 2.5, 0.35, 0.08),
            sung_line("it's all right little darling", 5.2, 0.35, 0.08, part="backing"),
            sung_line("it's been a long cold lonely winter", 7.0, length=0.2, gap=0.02),
        ],
        title="Test Sun",
        artist="The Testles",
    )


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A stereo karaoke mix with structure to correlate: a chord and noise bursts."""
    rng = np.random.default_rng(1)
    t = np.arange(int(SECONDS * RATE)) / RATE
    tone = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330))
    bursts = rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 1.5 * t) > 0.8) * 0.2
    audio = np.stack([tone + bursts, tone - bursts]).astype(np.float32)
    path = tmp_path_factory.mktemp("mix") / "mix.wav"
    write(path, audio, RATE, OutputFormat.parse("wav", "16"))
    return path, audio


def probe(path: Path) -> dict:
    said = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    return json.loads(said.stdout)


def picture(path: Path, t: float, width: int, height: int) -> np.ndarray:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{t}", "-i", str(path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(done.stdout, np.uint8).reshape(height, width, 3)


def near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 70) -> np.ndarray:
    return np.abs(image.astype(int) - rgb).sum(axis=2) < tolerance


@pytest.mark.parametrize("resolution", [(1280, 720), (1920, 1080)])
def test_the_video_plays_the_mix_with_the_words_filling(tmp_path, mix, resolution):
    audio_path, audio = mix
    width, height = resolution
    reports: list[dict] = []
    out = render_video(lyrics(), audio_path, tmp_path / "song.mp4", resolution=resolution, progress=reports.append)
    assert out == tmp_path / "song.mp4" and [p.name for p in tmp_path.iterdir()] == ["song.mp4"]
    info = probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    sound = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", *resolution)
    assert sound["codec_name"] == "aac"
    assert abs(float(info["format"]["duration"]) - SECONDS) < 0.1
    assert abs(float(video["duration"]) - SECONDS) < 0.1
    with open(out, "rb") as handle:  # faststart: the index (moov) before the media (mdat)
        head = handle.read(1 << 16)
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or head.find(b"mdat") < 0
    # the audio is the mix: decoded back, it lines up with it sample for sample and correlates
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "f32le", "-ac", "2", "-ar", str(RATE), "-"],
        capture_output=True,
        check=True,
    ).stdout
    back = np.frombuffer(decoded, np.float32).reshape(-1, 2).T
    assert abs(back.shape[1] - audio.shape[1]) < 0.05 * RATE
    n = min(back.shape[1], audio.shape[1]) - 2000
    lags = range(-200, 201)
    scores = [float(np.dot(back[0, 1000 + lag : 1000 + lag + n - 2000], audio[0, 1000 : n - 1000])) for lag in lags]
    assert abs(lags[int(np.argmax(scores))]) <= 2
    assert np.corrcoef(back[0, 1000 : n - 1000], audio[0, 1000 : n - 1000])[0, 1] > 0.98
    # the words: the first line is there and fills, gold further along later
    plan, geometry = plan_for(lyrics(), width, height)
    first = plan.lines[0]
    top = int(geometry.row_top(first, 0))
    rows = slice(top, top + int(geometry.row_height(first.size)))
    early, late = picture(out, 2.7, width, height), picture(out, 4.6, width, height)
    gold = [near(image[rows], screen.LEAD_SUNG).sum() for image in (early, late)]
    assert 0 < gold[0] < gold[1] / 3
    assert near(late[rows], screen.LEAD_UNSUNG, 60).sum() > 0  # the last words not yet
    backing = plan.lines[1]
    top = int(geometry.row_top(backing, 0))
    assert near(late[top : top + int(geometry.row_height(backing.size))], screen.BACKING_NEXT, 60).sum() > 500
    # progress went up to the song's length
    done = [report["done"] for report in reports]
    assert (
        done == sorted(done) and done[-1] == pytest.approx(SECONDS) and reports[-1]["total"] == pytest.approx(SECONDS)
    )
    from PIL import Image

    for name, t in (("line", 4.6), ("title", 0.8), ("backing", 6.3)):
        Image.fromarray(picture(out, t, width, height)).save(screenshot_path(f"karaoke-video-{height}p-{name}.png"))


def test_cancel_stops_ffmpeg_and_leaves_nothing(tmp_path, mix):
    token = CancelToken()
    with pytest.raises(Cancelled):
        render_video(lyrics(), mix[0], tmp_path / "song.mp4", resolution=(1280, 720),
                     progress=lambda report: token.cancel(), cancel=token)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_missing_ffmpeg_and_bad_input_say_what_to_do(tmp_path, mix, monkeypatch):
    with pytest.raises(screen.LyricsNotTimed, match="Align"):
        render_video(Lyrics([Line([Word("untimed")])]), mix[0], tmp_path / "a.mp4")
    with pytest.raises(StemDeskError, match="1920x1080 or 1280x720"):
        render_video(lyrics(), mix[0], tmp_path / "a.mp4", resolution=(640, 480))
    with pytest.raises(StemDeskError, match="neither an image file nor a colour"):
        render_video(lyrics(), mix[0], tmp_path / "a.mp4", background="not a colour!")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(FfmpegMissing, match="needs ffmpeg"):
        render_video(lyrics(), mix[0], tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_ffmpeg_is_worded_and_leaves_nothing(tmp_path, mix):
    out = tmp_path / "song.mp4"
    # a full disk and a broken encoder look alike to us: ffmpeg exits non-zero; here it cannot read the background
    broken = tmp_path / "background.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(StemDeskError, match="ffmpeg failed while rendering the karaoke video"):
        render_video(lyrics(), mix[0], out, resolution=(1280, 720), background=broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["background.png"]
    assert not any(name.endswith(".mp4") for name in os.listdir(tmp_path))
