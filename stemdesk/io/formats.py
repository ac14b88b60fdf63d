"""The audio formats StemDesk reads and writes, the depths it writes, and the exact float → integer conversion for
PCM.

Everything that offers a format or a depth (settings, the command line, the app) reads these lists; the command
line's help reads them without loading numpy or soundfile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import AudioError

if TYPE_CHECKING:  # numpy loads with the first samples quantised, not with the command line's choices
    import numpy as np

READABLE = (
    "WAV, FLAC, MP3, OGG (Vorbis or Opus), AIFF, M4A (AAC or ALAC), and the sound of MP4, MOV, MKV and WebM files"
)
# The audio files libsndfile reads: stems, multitracks, and songs.
AUDIO_SUFFIXES_READ = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
# The files probed through ffmpeg by their name (stemdesk.io.decode); others are when their first bytes say MP4 or
# Matroska.
CONTAINER_SUFFIXES = (".m4a", ".mp4", ".m4v", ".mov", ".mkv", ".mka", ".webm")
# Songs to separate: those, and the MP4, Matroska and WebM files (a video's sound track included) ffmpeg decodes.
SONG_SUFFIXES_READ = AUDIO_SUFFIXES_READ + CONTAINER_SUFFIXES

WRITE_FORMATS = {
    # name: (soundfile format, {bit depth: subtype}, extension)
    "wav": ("WAV", {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}, "wav"),
    "flac": ("FLAC", {"16": "PCM_16", "24": "PCM_24"}, "flac"),
    "aiff": ("AIFF", {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}, "aiff"),
    "mp3": ("MP3", {"lossy": "MPEG_LAYER_III"}, "mp3"),
    "ogg": ("OGG", {"lossy": "VORBIS"}, "ogg"),
}
OUTPUT_FORMATS: tuple[str, ...] = tuple(WRITE_FORMATS)
# the depths a user can choose ("lossy" is not a choice: it follows from MP3 and OGG)
BIT_DEPTHS: tuple[str, ...] = tuple(
    dict.fromkeys(depth for _, depths, _ in WRITE_FORMATS.values() for depth in depths if depth != "lossy")
)
DEFAULT_FORMAT, DEFAULT_DEPTH = "wav", "24"
LOSSLESS_FORMATS: tuple[str, ...] = tuple(
    name for name, (_, depths, _) in WRITE_FORMATS.items() if "lossy" not in depths
)
# libsndfile subtype -> integer bit depth, for the PCM depths a null can be bit-exact in
PCM_BITS = {"PCM_16": 16, "PCM_24": 24}


@dataclass(frozen=True)
class OutputFormat:
    """``name`` is wav, flac, aiff, mp3 or ogg; ``depth`` is 16, 24, 32f, or lossy."""

    name: str = DEFAULT_FORMAT
    depth: str = DEFAULT_DEPTH

    @classmethod
    def parse(cls, name: str = DEFAULT_FORMAT, depth: str | None = None) -> OutputFormat:
        name = name.lower()
        if name not in WRITE_FORMATS:
            raise AudioError(f"Unknown output format {name!r}; choose one of {', '.join(WRITE_FORMATS)}.")
        depths = WRITE_FORMATS[name][1]
        if "lossy" in depths:
            if depth not in (None, "lossy"):
                raise AudioError(f"{name.upper()} is lossy and has no bit depth: give none.", setting="bit_depth")
            return cls(name, "lossy")
        depth = depth or DEFAULT_DEPTH
        if depth not in depths:
            raise AudioError(
                f"{name.upper()} cannot be written at bit depth {depth}; choose one of {', '.join(depths)}."
            )
        return cls(name, depth)

    @property
    def extension(self) -> str:
        return WRITE_FORMATS[self.name][2]

    @property
    def soundfile(self) -> tuple[str, str]:
        container, subtypes, _ = WRITE_FORMATS[self.name]
        return container, subtypes[self.depth]

    @property
    def bits(self) -> int | None:
        """Integer bit depth for PCM formats, None for float and lossy."""
        return int(self.depth) if self.depth in ("16", "24") else None


def quantise(audio: np.ndarray, bits: int) -> np.ndarray:
    """Float in [−1, 1) → integers of ``bits`` bits (int32), rounded to nearest and clipped to the range.

    Inverse of libsndfile's integer → float reading (x / 2^(bits−1)), so a PCM file read as float and quantised
    at its own depth gives back its exact samples.
    """
    import numpy as np

    scale = float(1 << (bits - 1))
    # Scaling by a power of two is exact in float32 too, so float32 input need not be widened.
    work = np.multiply(audio, scale, dtype=np.float64 if audio.dtype == np.float64 else np.float32)
    np.rint(work, out=work)
    np.clip(work, -scale, scale - 1, out=work)
    return work.astype(np.int32)


def pcm_samples(ints: np.ndarray, bits: int) -> np.ndarray:
    """Integers of ``bits`` bits → what soundfile writes as-is at that depth: int16, or int32 holding 24-bit
    values in its top bytes (value << 8)."""
    import numpy as np

    return ints.astype(np.int16) if bits == 16 else (ints << 8).astype(np.int32)
