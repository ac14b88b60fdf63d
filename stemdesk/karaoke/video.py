"""Karaoke as an MP4 video: the karaoke mix with the words burnt in, for any TV, phone or video site.

ffmpeg draws it: the screens as an ASS file (`stemdesk.karaoke.ass`, laid out for the video's size) rendered by
its ``ass`` filter (libass) over a plain or gradient background, H.264 (yuv420p, which every player decodes) and AAC,
the index at the front (faststart) so a player starts before the whole file has arrived. The picture changes only
where words fill, so it is encoded at FPS frames a second with x264's still-image tuning, so that a song renders in
less than its own length on two cores.

The video is exactly as long as the audio. It is written to a temporary file beside the target and renamed into
place when complete; a failure or a cancel (which stops ffmpeg) leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ..core.cancel import CancelToken
from ..core.errors import AudioError, Cancelled, StemDeskError
from ..io.atomic import atomic_path
from ..io.audio import probe
from ..io.ffmpeg import INSTALL, find_ffmpeg
from . import screen
from .ass import write_ass
from .model import Lyrics

Progress = Callable[[dict], None]
RESOLUTIONS = ((1920, 1080), (1280, 720))
FPS = 15  # the fill moves smoothly at 15 frames a second, and every frame costs encoding time
AUDIO_BITRATE = "192k"


def _colour(rgb: tuple[int, int, int]) -> str:
    return "0x{:02x}{:02x}{:02x}".format(*rgb)


def _background(background: str | os.PathLike | None, width: int, height: int, seconds: float) -> list[str]:
    """ffmpeg's input arguments for the picture under the words: None, the default gradient (deep blue to purple,
    top to bottom); a colour (ffmpeg's names or #RRGGBB); or an image file, scaled and cropped to cover the frame
    (in the filter graph, see `render_video`)."""
    size = f"{width}x{height}"
    if background is None:
        top, bottom = _colour(screen.BACKGROUND_TOP), _colour(screen.BACKGROUND_BOTTOM)
        # one frame of the gradient, repeated: drawing it afresh for every frame took half a second per second
        source = (
            f"gradients=s={size}:c0={top}:c1={bottom}:x0=0:y0=0:x1=0:y1={height}:nb_colors=2:speed=1e-05:r={FPS},"
            f"trim=end_frame=1,loop=loop=-1:size=1,trim=duration={seconds:.6f}"
        )
        return ["-f", "lavfi", "-i", source]
    text = os.fspath(background)
    if Path(text).is_file():
        # read once and repeated in the graph (`_cover`): ffmpeg's own -loop 1 decodes the file for every frame,
        # and retries a file it cannot decode for ever
        return ["-i", text]
    if not re.fullmatch(r"#?[0-9A-Fa-f]{6}|[A-Za-z]+", text):
        raise StemDeskError(
            f'The background "{text}" is neither an image file nor a colour. Give an image (PNG or JPEG), a colour '
            'such as "#102040" or "navy", or nothing for the default gradient.',
            setting="background",
        )
    colour = "0x" + text[1:] if text.startswith("#") else text
    return ["-f", "lavfi", "-i", f"color=c={colour}:s={size}:r={FPS}:d={seconds:.6f}"]


def _filter_path(path: Path) -> str:
    """A path as a filter's option inside ``-filter_complex``: escaped once for the option (``\\ : '``) and once
    more for the graph (``\\ ' [ ] , ;``), the two levels ffmpeg parses."""
    text = str(path)
    for level in ("\\:'", "\\'[],;"):
        text = "".join("\\" + char if char in level else char for char in text)
    return text


def _check_ffmpeg(ffmpeg: str) -> None:
    """StemDeskError when this ffmpeg lacks what the video needs: libass (the ``ass`` filter) or x264."""
    needs = {
        "-filters": (" ass ", "libass, which draws the words (its ass filter)"),
        "-encoders": (" libx264 ", "the x264 encoder (libx264), which writes the H.264 picture"),
    }
    for option, (name, what) in needs.items():
        try:
            listed = subprocess.run(
                [ffmpeg, "-hide_banner", option], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise AudioError(f"ffmpeg could not be started to render the karaoke video: {error}. {INSTALL}") from None
        if name not in listed:
            raise AudioError(
                f"This ffmpeg ({ffmpeg}) was built without {what}, which the karaoke video needs. Install an ffmpeg "
                "built with it (Debian's and Ubuntu's ffmpeg package, Homebrew's and the gyan.dev Windows builds "
                "are) and try again."
            )


def _complaints(text: str, hide: list[str]) -> str:
    """ffmpeg's last two distinct complaints, without its "[tag @ 0x…]" prefixes or the temporary paths."""
    said: list[str] = []
    for line in text.splitlines():
        for path in hide:
            line = line.replace(path, "")
        line = re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", line.strip()).lstrip(":").strip().rstrip(".")
        if line and line not in said:
            said.append(line)
    return "; ".join(said[-2:])


def render_video(
    lyrics: Lyrics,
    audio: str | os.PathLike,
    out: str | os.PathLike,
    *,
    resolution: tuple[int, int] = (1920, 1080),
    title: str = "",
    artist: str = "",
    background: str | os.PathLike | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Render the karaoke video of ``lyrics`` over ``audio`` (the karaoke mix, any file ffmpeg reads) to ``out``
    (an MP4), as long as the audio. ``resolution`` is (1920, 1080) or (1280, 720); ``background`` None (a gradient),
    a colour or an image; ``title`` and ``artist`` (else the lyrics' own) make the title card. ``progress`` gets
    {"message", "done", "total"} in seconds of the song; ``cancel`` stops ffmpeg and removes the partial file.
    Raises LyricsNotTimed for a word without times, AudioError when ffmpeg is missing or fails."""
    if tuple(resolution) not in RESOLUTIONS:
        raise StemDeskError(
            f"The karaoke video is rendered at 1920x1080 or 1280x720, not {resolution[0]}x{resolution[1]}.",
            setting="resolution",
            value="1920x1080",
        )
    width, height = resolution
    audio, out = Path(audio), Path(out)
    report = progress or (lambda event: None)
    cancel = cancel or CancelToken()
    seconds = probe(audio).seconds
    screen.check_timed(lyrics)
    ffmpeg = find_ffmpeg("Rendering a karaoke video")
    _check_ffmpeg(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="stemdesk-karaoke-") as folder:
        subtitles = write_ass(
            lyrics, Path(folder) / "lyrics.ass", width=width, height=height, title=title, artist=artist
        )
        font = screen.font_path()
        fonts = f":fontsdir={_filter_path(font.parent)}" if font is not None else ""
        cover = (
            f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1,"
            f"loop=loop=-1:size=1,fps={FPS},trim=duration={seconds:.6f},"
            if background is not None and Path(os.fspath(background)).is_file()
            else ""
        )
        graph = f"[0:v]{cover}format=yuv420p,ass=filename={_filter_path(subtitles)}{fonts}[v]"
        with atomic_path(out) as temp:
            command = [
                ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                *_background(background, width, height, seconds),
                "-i", str(audio),
                "-filter_complex", graph,
                "-map", "[v]", "-map", "1:a:0",
                "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-pix_fmt", "yuv420p",
                "-r", str(FPS), "-g", str(FPS * 10),
                "-c:a", "aac", "-b:a", AUDIO_BITRATE,
                "-t", f"{seconds:.6f}",
                "-movflags", "+faststart",
                "-progress", "pipe:1", "-nostats",
                "-f", "mp4", str(temp),
            ]  # fmt: skip
            _run(command, seconds, report, cancel, hide=[str(temp), folder + os.sep, folder])
    return out


def _run(command: list[str], seconds: float, report: Progress, cancel: CancelToken, hide: list[str]) -> None:
    """Run ffmpeg, passing on its ``-progress`` reports; stop it on a cancel (Cancelled) and word a failure. Its
    reports are read on a thread of their own, so a cancel is seen within a fifth of a second even when ffmpeg
    has stopped reporting."""
    with tempfile.TemporaryFile() as errors:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        except OSError as error:
            raise AudioError(f"ffmpeg could not be started to render the karaoke video: {error}. {INSTALL}") from None
        said: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(child.stdout, said), daemon=True)
        reader.start()
        try:
            while True:
                if cancel.cancelled:
                    raise Cancelled()
                try:
                    raw = said.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not raw:  # ffmpeg closed its output: it has ended
                    break
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "out_time_us" and value.lstrip("-").isdigit():
                    done = min(seconds, max(0.0, int(value) / 1e6))
                    report({"message": "rendering the karaoke video", "done": done, "total": seconds})
            code = child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            reader.join(5)
        if code != 0:
            errors.seek(0)
            said_text = errors.read(1 << 20).decode("utf-8", "replace")
            raise AudioError(
                f"ffmpeg failed while rendering the karaoke video: {_complaints(said_text, hide) or f'exit code {code}'}."
            )
    report({"message": "rendering the karaoke video", "done": seconds, "total": seconds})


def _read_lines(stream, lines: queue.Queue[bytes]) -> None:
    """Pass each line of ``stream`` on, then b"" at its end."""
    for line in stream:
        lines.put(line)
    lines.put(b"")
