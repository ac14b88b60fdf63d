"""ffmpeg, the one outside program StemDesk runs: it encodes and decodes the MP4 audio of NI Stem files (ALAC and
AAC), and decodes the songs libsndfile cannot read (AAC and ALAC in MP4, Opus and Vorbis in Matroska and WebM, the
sound track of a video: `stemdesk.io.decode`). Everything else StemDesk reads and writes goes through libsndfile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import AudioError

INSTALL = (
    "Install it (Debian and Ubuntu: sudo apt-get install ffmpeg, which StemDesk's scripts/setup.sh also runs; Fedora: "
    "sudo dnf install ffmpeg; macOS: brew install ffmpeg; Windows: put ffmpeg.exe and ffprobe.exe on the PATH) and "
    "try again."
)


class FfmpegMissing(AudioError):
    """ffmpeg (or its ffprobe) is not installed; the message says what needed it and how to install it."""


def find_ffmpeg(needed_for: str) -> str:
    """The path of the ffmpeg program, or FfmpegMissing saying that ``needed_for`` needs it and how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise FfmpegMissing(f"{needed_for} needs ffmpeg, which is not installed (not found on the PATH). {INSTALL}")
    return path


def find_ffprobe(ffmpeg: str, needed_for: str) -> str:
    """ffprobe, which comes with ffmpeg: the one beside ``ffmpeg``, else the one on the PATH; FfmpegMissing without."""
    beside = Path(ffmpeg).with_name("ffprobe" + Path(ffmpeg).suffix)
    path = str(beside) if beside.is_file() else shutil.which("ffprobe")
    if path is None:
        raise FfmpegMissing(
            f"{needed_for} needs ffprobe, which comes with ffmpeg but is not installed (not found beside "
            f'"{ffmpeg}" or on the PATH). {INSTALL}'
        )
    return path


def run_quietly(arguments: Sequence[str], hide: Sequence[str] = (), doing: str = "") -> tuple[int, bytes, str]:
    """Run ffmpeg or ffprobe (``arguments[0]``) with no input: (exit code, stdout, its last two distinct complaints).
    The complaints lose ffmpeg's "[tag @ 0x…]" prefixes and the paths in ``hide`` (the absolute ones StemDesk gave
    it), so that messages name the song as the user gave it and never a temporary file. A program that cannot be
    started is an AudioError saying how to install it (and what it was ``doing``, when given)."""
    try:
        done = subprocess.run(list(arguments), stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError as error:
        purpose = f" for {doing}" if doing else ""
        raise AudioError(
            f"{Path(arguments[0]).name} could not be started{purpose}: {error.strerror or error}. {INSTALL}"
        ) from None
    said: list[str] = []  # ffmpeg's distinct complaints, in order ("moov atom not found", "Invalid data ...")
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        for text in hide:
            line = line.replace(text, "")
        line = re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", line.strip()).lstrip(":").strip().rstrip(".")
        if line and line not in said:
            said.append(line)
    return done.returncode, done.stdout, "; ".join(said[-2:]) or f"exit code {done.returncode}"


def run_ffmpeg(ffmpeg: str, arguments: Sequence[str], doing: str) -> None:
    """Run ffmpeg quietly; a failure is an AudioError with what it was ``doing`` and ffmpeg's own last words."""
    code, _, said = run_quietly([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *arguments], doing=doing)
    if code != 0:
        raise AudioError(f"ffmpeg failed while {doing}: {said}.")


def ffmpeg_version(ffmpeg: str) -> str:
    """ffmpeg's own name for its version ("ffmpeg 5.1.9-0+deb12u1"), for certificates; "ffmpeg" when it does not say."""
    try:
        said = subprocess.run([ffmpeg, "-version"], stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError:
        return "ffmpeg"
    words = said.stdout.decode("utf-8", "replace").split()
    return f"ffmpeg {words[2]}" if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else "ffmpeg"
