"""Reading and writing audio files with soundfile (libsndfile): sample-exact for every format, MP3 included. Songs
libsndfile cannot read (AAC and ALAC in MP4, Opus and Vorbis in Matroska and WebM, a video's sound track) are decoded
by ffmpeg once into a temporary WAV that every read of them uses (`stemdesk.io.decode`).

Reading streams in blocks so a long file never sits in memory. Writing goes to a temporary file beside the
target, renamed into place only when complete: a failure or a cancel leaves no partial file.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.errors import AudioError
from . import decode, riff
from .atomic import create_temp, publish
from .formats import AUDIO_SUFFIXES_READ, READABLE, SONG_SUFFIXES_READ, OutputFormat, pcm_samples, quantise  # noqa: F401 - read here too

READ_FORMATS = {
    "WAV": "WAV",
    "WAVEX": "WAV",
    "RF64": "WAV",
    "W64": "WAV",
    "FLAC": "FLAC",
    "MP3": "MP3",
    "OGG": "OGG",
    "AIFF": "AIFF",
}
MIN_RATE, MAX_RATE = 8000, 384000


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    # The file the samples are read from when it is not ``path`` itself: the temporary WAV ffmpeg decoded an MP4,
    # Matroska or WebM file or a variable-bitrate MP3 without a frame count into (`stemdesk.io.decode`); ``path``
    # stays the user's file, the one every message names. ``decoder`` says what decoded it ("ffmpeg 5.1.9").
    decoded: Path | None = None
    decoder: str | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def samples_from(self) -> Path:
        return self.decoded or self.path


def _convert_hint(path: Path) -> str:
    return f'convert it first (for example: ffmpeg -i "{path.name}" "{path.stem}.flac")'


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open a file's header and check it is audio StemDesk can separate. Raises AudioError with the fix."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f'"{path}" is a folder, not an audio file. Give the path of a {READABLE} file.')
    if not path.exists():
        raise AudioError(f'"{path}" does not exist. Check the path and spelling.')
    if path.stat().st_size == 0:
        raise AudioError(f'"{path.name}" is empty (0 bytes). Export or copy the file again.')
    if decode.is_container(path):
        return _probe_decoded(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(
            f'Cannot read "{path.name}": {_libsndfile_reason(error)}. StemDesk reads {READABLE}; '
            f"if the file plays elsewhere, {_convert_hint(path)}."
        ) from None
    if info.format not in READ_FORMATS:
        raise AudioError(
            f'Cannot read "{path.name}": {info.format_info} files are not supported. '
            f"StemDesk reads {READABLE}; {_convert_hint(path)}."
        )
    if info.frames <= 0:
        raise AudioError(f'"{path.name}" holds no audio samples. Export the song again.')
    _check_rate(path.name, info.samplerate)
    if info.channels < 1:
        raise AudioError(f'"{path.name}" has no channels.')
    declared = _wav_declared_frames(path) if info.format in ("WAV", "WAVEX") else None
    if declared is not None and declared > info.frames:
        raise AudioError(
            f'"{path.name}" is truncated: its header promises {declared / info.samplerate:.2f} s but the file holds '
            f"{info.frames / info.samplerate:.2f} s. Export or copy it again (or trim it to its real length, "
            f'for example: sox "{path.name}" fixed.wav).'
        )
    uncounted_mp3 = info.format == "MP3" and not _mp3_counts_frames(path)
    if uncounted_mp3 and (_mp3_walk_frames(path) or 0) > info.frames + MP3_FRAME_SAMPLES:
        # libsndfile guessed the length from the first frame's bitrate and reads no further than its guess: ffmpeg
        # decodes it whole, sample for sample as libsndfile does where both read (they differ by float rounding,
        # below 1e-6), into a float WAV
        needed = (
            f'"{path.name}" is a variable-bitrate MP3 without a header that gives its length: the MP3 reader sees '
            f"only its first {info.frames / info.samplerate:.2f} s. Reading it whole"
        )
        entry = decode.decoded(path, needed, container=False)
        return AudioInfo(
            path, info.samplerate, info.channels, entry.frames, "MP3", info.subtype, entry.wav, entry.decoder
        )
    estimated = info.format == "OGG" or uncounted_mp3
    frames = _decodable_frames(path, info.frames) if estimated else info.frames
    return AudioInfo(path, info.samplerate, info.channels, frames, READ_FORMATS[info.format], info.subtype)


def _check_rate(shown: str, rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            f'"{shown}" has a sample rate of {rate} Hz; StemDesk separates '
            f"{MIN_RATE}–{MAX_RATE} Hz audio. Resample it first (for example to 44100 Hz)."
        )


def _probe_decoded(path: Path) -> AudioInfo:
    """An MP4, Matroska or WebM file (a video's sound track included): decoded by ffmpeg into a temporary WAV (or
    found decoded already), whose samples are the song's from then on; its length is the decoded samples', not the
    container's. Messages name ``path`` as given."""
    shown = str(path)
    needed = f'Reading "{shown}" (AAC, ALAC, Opus or Vorbis in an MP4, Matroska or WebM file)'
    entry = decode.decoded(path, needed, check=lambda track: _check_rate(shown, track.sample_rate))
    if entry.channels < 1:
        raise AudioError(f'"{shown}" has no channels.')
    return AudioInfo(
        path, entry.sample_rate, entry.channels, entry.frames, entry.codec, entry.subtype, entry.wav, entry.decoder
    )


# How much of a file's end is decoded to find its true length, when its header's length is not exact.
TAIL_FRAMES = 1 << 16


def _decodable_frames(path: Path, declared: int) -> int:
    """The length that decodes, for files whose declared length can promise a little more:
    - an Ogg file's length is its last page's granule position, which can promise a few samples more than its
      packets decode to (104 in three of Debian's hyperrogue-music files, which play everywhere);
    - an MP3 without a Xing, Info or VBRI header has no frame count: libsndfile estimates it from the file's size,
      which an ID3v1 tag or a stray byte at the end inflates (0.25 and 0.38 s in two of Debian's asc-music files).
    The end is decoded to count it; a file whose last ``TAIL_FRAMES`` do not decode at all keeps the declared length
    (reading it then says where it stops: truncated)."""
    try:
        with sf.SoundFile(str(path)) as handle:
            start = max(0, declared - TAIL_FRAMES)
            handle.seek(start)
            decoded = handle.read(TAIL_FRAMES + 1, dtype="float32", always_2d=True).shape[0]
    except (sf.LibsndfileError, RuntimeError):
        return declared
    return start + decoded if 0 < start + decoded < declared else declared


def _id3v2_size(head: bytes) -> int:
    """The bytes an ID3v2 tag at the start of an MP3 takes (0 without one), from the file's first 10 bytes."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)  # the footer flag adds 10 bytes


def _mp3_counts_frames(path: Path) -> bool:
    """Whether an MP3 states its frame count (a Xing, Info or VBRI header in its first frame, after any ID3v2 tag):
    then its length is exact and a file that decodes to less is truncated."""
    try:
        with open(path, "rb") as handle:
            handle.seek(_id3v2_size(handle.read(10)))
            first = handle.read(4096)
    except OSError:
        return True
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


MP3_FRAME_SAMPLES = 1152  # the most samples an MPEG audio frame holds (Layer II, and Layer III of MPEG-1)
# kbit/s by bitrate index: MPEG-1 Layers I, II, III, then MPEG-2 and 2.5 Layer I, and Layers II and III
_MP3_BITRATES = (
    (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
)
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _mp3_frame(header: bytes) -> tuple[int, int] | None:
    """(bytes, samples) of the MPEG audio frame whose 4-byte header this is, or None when it is not one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, 4 - ((header[1] >> 1) & 3)  # layer 4: reserved
    index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer == 4 or index in (0, 15) or rate_index == 3:  # reserved, free format or bad values
        return None
    rate = _MP3_RATES[version][rate_index]
    bitrate = 1000 * _MP3_BITRATES[layer - 1 if version == 3 else (3 if layer == 1 else 4)][index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384
    samples = 1152 if layer == 2 or version == 3 else 576
    return samples // 8 * bitrate // rate + padding, samples


def _mp3_walk_frames(path: Path) -> int | None:
    """Samples per channel in an MP3's frames, counted by walking their headers from the first frame (two in a row
    where the first ends) to the last whole one; None when no frames are found or the file cannot be read."""
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            position = _id3v2_size(data[:10])
            for start in range(position, min(len(data), position + 65536)):
                frame = _mp3_frame(data[start : start + 4])
                if frame is not None and _mp3_frame(data[start + frame[0] : start + frame[0] + 4]) is not None:
                    position = start
                    break
            else:
                return None
            samples = 0
            while (frame := _mp3_frame(data[position : position + 4])) is not None and position + frame[0] <= len(data):
                samples += frame[1]
                position += frame[0]
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        return None
    return samples or None


def _wav_declared_frames(path: Path) -> int | None:
    """The frame count a RIFF WAV's data chunk declares, or None when it leaves it open (0 or 0xFFFFFFFF, as
    streaming recorders write) or the header cannot be walked."""
    try:
        with open(path, "rb") as handle:
            block_align = None
            for key, size in riff.chunks(handle):
                if key == b"fmt ":
                    fmt = handle.read(size)
                    block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else None
                elif key == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
    except OSError:
        return None
    return None


def _libsndfile_reason(error: Exception) -> str:
    text = str(error)
    if "does not exist or is not a regular file" in text:  # libsndfile's words for an unparseable MP3
        return "the file is damaged or not audio (its contents could not be parsed)"
    if "Format not recognised" in text or "unknown format" in text.lower():
        return "the contents are not a recognised audio format (wrong extension, or not audio at all)"
    if "truncated" in text.lower() or "unexpected end" in text.lower():
        return "the file is truncated"
    return text.split(":")[-1].strip().rstrip(".") or "unknown error"


class AudioReader:
    """Random access to one file's samples, checked as they are read: NaN or infinite samples raise an AudioError
    (a mask network or a mixer would spread them over everything), and so does a file that ends before its header
    says. ``source`` is a path (probed first) or an `AudioInfo` from `probe`. Use as a context manager or `close`."""

    def __init__(self, source: str | os.PathLike | AudioInfo):
        self.info = source if isinstance(source, AudioInfo) else probe(source)
        self.position = 0
        samples = self.info.samples_from
        if self.info.decoded is not None and not samples.is_file():
            # its decoding was removed (the job that held it ended): ffmpeg decodes the unchanged file alike
            again = probe(self.info.path)
            if again.frames != self.info.frames:
                raise AudioError(f'"{self.info.path}" changed while it was open. Open it again.')
            samples = again.samples_from
        try:
            self._file = sf.SoundFile(str(samples))
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError(
                f'Cannot read "{self.info.path.name}": {_libsndfile_reason(error)}. The file may be '
                "damaged; export or copy it again."
            ) from None

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def frames(self) -> int:
        return self.info.frames

    def seek(self, frame: int) -> None:
        if frame != self.position:
            self._file.seek(frame)
            self.position = frame

    def read(self, frames: int, dtype: str = "float32", frames_first: bool = False) -> np.ndarray:
        """The next ``frames`` samples as (channels, n) of ``dtype`` (``frames_first``: (n, channels), as the file
        interleaves them, without a copy); fewer only at the end of the file. A file that ends early returns what it
        holds, and the next read raises."""
        info = self.info
        want = max(0, min(frames, info.frames - self.position))
        try:
            data = self._file.read(want, dtype=dtype, always_2d=True)
        except sf.LibsndfileError as error:
            raise AudioError(
                f'Reading "{info.path.name}" failed at {self.position / info.sample_rate:.2f} s: '
                f"{_libsndfile_reason(error)}. The file may be damaged; export or copy it again."
            ) from None
        if want and data.shape[0] == 0:
            raise AudioError(
                f'"{info.path.name}" ends at {self.position / info.sample_rate:.2f} s, before the '
                f"{info.seconds:.2f} s its header promises: the file is truncated. Export or copy it again."
            )
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            bad = self.position + int(np.argwhere(~np.isfinite(data))[0][0])
            raise AudioError(
                f'"{info.path.name}" contains NaN or infinite samples (first at {bad / info.sample_rate:.3f} s). '
                "Re-render the file from its source; no stems were written."
            )
        self.position += data.shape[0]
        return data if frames_first else np.ascontiguousarray(data.T)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close()


def iter_blocks(
    info: AudioInfo, block: int = 1 << 18, start: int = 0, frames: int | None = None, dtype: str = "float32"
) -> Iterator[np.ndarray]:
    """Yield (channels, n) blocks from ``start`` for ``frames`` samples (to the end when None), checked as
    `AudioReader` checks them. A file that ends before its header says yields what is there and then raises."""
    end = info.frames if frames is None else min(info.frames, start + frames)
    if start < 0 or start >= info.frames:
        raise AudioError(
            f'Start {start / info.sample_rate:.2f} s is outside "{info.path.name}" ({info.seconds:.2f} s long).'
        )
    with AudioReader(info) as reader:
        reader.seek(start)
        while reader.position < end:
            yield reader.read(min(block, end - reader.position), dtype)


def read(path: str | os.PathLike, start: int = 0, frames: int | None = None) -> tuple[np.ndarray, int]:
    """Whole (or part of a) file as float32 (channels, length) and its sample rate, read into one array (not
    gathered in blocks and joined: that held it twice)."""
    info = probe(path)
    end = info.frames if frames is None else min(info.frames, start + frames)
    out = np.empty((info.channels, max(0, end - start)), np.float32)
    at = 0
    for block in iter_blocks(info, start=start, frames=frames):
        out[:, at : at + block.shape[1]] = block
        at += block.shape[1]
    return out[:, :at], info.sample_rate


# Writing ---------------------------------------------------------------------------------------------------------

# libsndfile crashes encoding long Vorbis buffers in one call; lossy formats are written in blocks this long.
LOSSY_BLOCK = 1 << 16


def _write_error(error: Exception, path: Path) -> OSError:
    """libsndfile reports a full disk as "System error."; say what it is when the disk is in fact full."""
    try:
        if shutil.disk_usage(path.parent).free < 1 << 20:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        pass
    return OSError(f"{error} while writing {path.name}")


def peak(audio: np.ndarray) -> float:
    """The loudest sample's magnitude (0 for no samples), without the copy ``np.abs(audio).max()`` makes."""
    if not audio.size:
        return 0.0
    return max(float(audio.max()), -float(audio.min()))


def interleave(block: np.ndarray) -> np.ndarray:
    """(channels, n) → (n, channels) C-contiguous, as a file interleaves samples: a view where ``block`` already is
    laid out so, else a copy made channel by channel (numpy's own transposing copy, ``ascontiguousarray(block.T)``,
    takes about six times as long on long rows: 3 ms against 0.5 for 18 s of 16-bit stereo)."""
    if block.T.flags.c_contiguous:
        return block.T
    frames = np.empty(block.shape[::-1], dtype=block.dtype)
    for channel, samples in enumerate(block):
        frames[:, channel] = samples
    return frames


class AtomicAudioWriter:
    """Writes one audio file through a temporary file in the target folder; `commit` renames it into place.

    Use as a context manager: leaving the block with an exception (a cancel included) deletes the temporary file,
    so the target is either the complete new file or whatever was there before.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, format: str, subtype: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = create_temp(self.path)
        temp = str(self.temp)
        self.lossy = format in ("MP3", "OGG")
        try:
            # Lossy stems are encoded at the best quality (MP3: 320 kbit/s constant; Vorbis: quality 10).
            quality: dict[str, float | str] = {"compression_level": 0.0} if self.lossy else {}
            if format == "MP3":
                quality["bitrate_mode"] = "CONSTANT"
            self._file = sf.SoundFile(
                temp, "w", samplerate=sample_rate, channels=channels, format=format, subtype=subtype, **quality
            )
        except Exception:
            self.temp.unlink(missing_ok=True)
            raise

    @classmethod
    def for_format(
        cls, path: str | os.PathLike, sample_rate: int, channels: int, fmt: OutputFormat
    ) -> AtomicAudioWriter:
        """A writer for ``fmt`` whose `write_float` takes float blocks and writes PCM exactly (see `quantise`)."""
        writer = cls(path, sample_rate, channels, *fmt.soundfile)
        writer.bits = fmt.bits
        return writer

    bits: int | None = None  # set by `for_format`: the PCM depth `write_float` quantises to

    def write_float(self, block: np.ndarray) -> int:
        """block: (channels, n) float. PCM is quantised here (rounded to nearest, clipped to full scale) rather than
        by libsndfile, so a file read back as float and written again at its own depth is unchanged. Returns how
        many samples were clipped (always 0 for float and lossy formats)."""
        if self.bits is None:
            self.write(block)
            return 0
        scale = float(1 << (self.bits - 1))
        clipped = int(np.count_nonzero((block >= 1.0) | (block < -1.0 - 0.5 / scale)))
        self.write(pcm_samples(quantise(block, self.bits), self.bits))
        return clipped

    def write(self, block: np.ndarray) -> None:
        """block: (channels, n), float or int (ints are written as-is: int16 for 16-bit, int32 << 8 for 24-bit)."""
        frames = interleave(block)
        step = LOSSY_BLOCK if self.lossy else max(1, frames.shape[0])
        try:
            for i in range(0, frames.shape[0], step):
                self._file.write(frames[i : i + step])
        except sf.LibsndfileError as error:
            raise _write_error(error, self.path) from None

    def close(self) -> None:
        """Flush and close the temporary file (a full disk shows up here); the target is not touched yet."""
        if not self._file.closed:
            try:
                self._file.close()
            except sf.LibsndfileError as error:
                raise _write_error(error, self.path) from None

    def commit(self) -> Path:
        self.close()
        publish(self.temp, self.path)
        return self.path

    def abort(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except (sf.LibsndfileError, OSError):
                pass  # the file is being discarded; a full disk must not hide the original error
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicAudioWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


def write(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, fmt: OutputFormat) -> Path:
    """A whole (channels, n) float array to ``path`` in ``fmt``, atomically (PCM quantised as `write_float` does)."""
    with AtomicAudioWriter.for_format(path, sample_rate, audio.shape[0], fmt) as writer:
        writer.write_float(audio)
        return writer.commit()
