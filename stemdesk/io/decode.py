"""Songs libsndfile cannot read, decoded by ffmpeg: AAC and ALAC in MP4 (.m4a, .mp4, .m4v, .mov), Opus and Vorbis
in Matroska and WebM (.mkv, .mka, .webm), the sound track of a video (its default audio stream, else its first), and
the variable-bitrate MP3s without a frame count whose length libsndfile can only guess.

Each song is decoded once, whole, into a WAV in a private temporary folder (``stemdesk-decode-<pid>-…`` in the
process's temporary folder, `tempfile.gettempdir`), and everything reads that file: `stemdesk.io.audio.probe` takes
the length from it (the samples ffmpeg decodes, never the container's stated duration, which counts encoder delay
and padding its own way), the separation reads its blocks from it, and the null check and the certificate verify the
stems against those very samples. Messages and certificates name the user's file, never the temporary one.

Why a file and not a pipe: a song is read more than once (the separation streams it, the null check streams it
again, the instrumental is checked against it, the app seeks in it to play, draw and recheck), and only a file gives
every reader the same samples, at random access. Decoding anew through a pipe for each reader would cost a decode
each and would trust ffmpeg to decode alike every time; holding the song in memory would cost 212 MB of float32 for
a 10-minute stereo song at 44.1 kHz, which the separation's streaming design exists to avoid. On disk that song takes
the same 212 MB (48 kHz: 230 MB; integer codecs such as ALAC keep their integers: 106 MB at 16 bits), and ffmpeg
decodes 3 minutes of 256 kbit/s AAC in about 0.3 s. Samples are stored exactly: float codecs (AAC, Opus, Vorbis,
MP3) as 32-bit float, integer codecs (ALAC, FLAC) as PCM of their depth, RF64 past 4 GB.

Nothing is left behind:
- a job that reads a song several times (a separation with its null check, instrumental and sessions) runs inside
  `holding`: a decoding made for it is removed when the last job holding that song ends, normally, by an error, by
  a cancel or by Ctrl-C;
- a decoding a bare `probe` asked for (the app opening a song, which it reads again and again while it is open)
  stays for later probes of the same unchanged file; at most ``KEEP`` of those stay, the oldest removed first;
- whatever is left when the process exits is removed then (atexit), and the folders of processes that died
  without exiting (killed) are swept the next time anything is decoded.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..core.errors import AudioError
from .atomic import process_alive
from .ffmpeg import ffmpeg_version, find_ffmpeg, find_ffprobe, run_quietly
from .formats import CONTAINER_SUFFIXES

PREFIX = "stemdesk-decode-"
KEEP = 4  # decodings of bare probes kept for later probes of the same file
# A track that decodes to this much (seconds, or this share of it) less than its container promises is truncated.
# Encoder delay and padding move the decoded length by a few milliseconds either way, never by this much.
TRUNCATED_SECONDS, TRUNCATED_SHARE = 0.5, 0.005
SPARE_BYTES = 64 << 20  # left free on the temporary folder's disk beyond the decoding


@dataclass(frozen=True)
class Track:
    """The audio stream ffmpeg is to decode, as ffprobe reports it."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    sample_format: str  # ffmpeg's: "fltp", "s16p", "s32p" ...
    bits: int  # bits_per_raw_sample (24 for 24-bit ALAC in 32-bit samples); 0 when not stated
    declared: float | None  # the seconds the container states for it, when it does


@dataclass
class Decoded:
    """A song's audio decoded into ``wav`` (in its own ``folder``)."""

    source: str  # the song's resolved path
    folder: Path
    wav: Path
    frames: int
    sample_rate: int
    channels: int
    subtype: str  # the WAV's: FLOAT, PCM_16, PCM_24, PCM_32 or DOUBLE
    codec: str  # "AAC", "ALAC", "OPUS", "VORBIS", "MP3" ...
    decoder: str  # "ffmpeg 5.1.9-0+deb12u1"
    kept: bool = False  # a bare probe uses it: it outlives the jobs holding the song


_LOCK = threading.RLock()  # over the cache; held while decoding, so two threads never decode one song twice
_ENTRIES: OrderedDict[tuple[str, int, int], Decoded] = OrderedDict()  # (song, size, mtime) -> decoding, oldest first
_HOLDS: Counter[str] = Counter()  # song -> jobs holding it


def is_container(path: Path) -> bool:
    """Whether ``path`` is read through ffmpeg: an MP4 or Matroska name, or contents that start like one (an
    ``ftyp`` box; the EBML magic) whatever the name."""
    if path.suffix.lower() in CONTAINER_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@contextmanager
def holding(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``path``'s decoding (made inside the block or before it) for the block: a decoding no bare probe uses is
    removed when the last block holding its song ends, however it ends. Any file may be held; most need no
    decoding, and then this does nothing."""
    source = str(Path(path).resolve())
    with _LOCK:
        _HOLDS[source] += 1
    try:
        yield
    finally:
        with _LOCK:
            _HOLDS[source] -= 1
            if _HOLDS[source] <= 0:
                del _HOLDS[source]
                for key, entry in list(_ENTRIES.items()):
                    if entry.source == source and not entry.kept:
                        _forget(key)


def decoded(
    path: Path, needed_for: str, container: bool = True, check: Callable[[Track], None] | None = None
) -> Decoded:
    """The decoding of ``path``'s audio: the one made before for the same unchanged file, else a new one. With
    ``container``, ffprobe picks the track (the default audio stream, else the first) and its sample format picks
    the WAV's; without, ffmpeg's first audio stream is decoded to float (an MP3). ``check`` sees the track before it
    is decoded and raises to refuse it. ``needed_for`` says what needs ffmpeg, should it be missing. Raises
    AudioError (FfmpegMissing when ffmpeg is) naming ``path`` as given."""
    key = _key(path)
    with _LOCK:
        entry = _ENTRIES.get(key)
        if entry is not None and entry.wav.is_file():
            _ENTRIES.move_to_end(key)
        else:
            if entry is not None:
                _forget(key)
            entry = _decode(path, key[0], needed_for, container, check)
            _ENTRIES[key] = entry
        if not _HOLDS[key[0]]:
            entry.kept = True
        _tidy(key)
        return entry


def _tidy(newest: tuple[str, int, int]) -> None:
    """Remove the decodings of older versions of the newest's song, and bare probes' beyond ``KEEP``, where no job
    holds their song."""
    free = [key for key, entry in _ENTRIES.items() if key != newest and not _HOLDS[entry.source]]
    for key in free:
        if key[0] == newest[0]:
            _forget(key)
    kept = [key for key in free if key in _ENTRIES]
    for key in kept[: max(0, len(kept) + 1 - KEEP)]:
        _forget(key)


def _forget(key: tuple[str, int, int]) -> None:
    entry = _ENTRIES.pop(key)
    shutil.rmtree(entry.folder, ignore_errors=True)


@atexit.register
def remove_all() -> None:
    """Remove every decoding this process made (at exit; a reader still open on Windows keeps its file)."""
    with _LOCK:
        for key in list(_ENTRIES):
            _forget(key)


def _sweep() -> None:
    """Remove the decoding folders of processes that are gone (killed before they could remove them)."""
    if os.name != "posix":  # process ids are checked with a signal 0, which Windows does not have
        return
    try:
        folders = list(Path(tempfile.gettempdir()).glob(PREFIX + "*"))
    except OSError:
        return
    for folder in folders:
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def _version(ffmpeg: str) -> str:
    return ffmpeg_version(ffmpeg)


def _seconds(text: object) -> float | None:
    """A duration as ffprobe writes it ("3.000000"), or a Matroska DURATION tag ("00:03:02.123000000")."""
    if not isinstance(text, str):
        return None
    try:
        if ":" in text:
            hours, minutes, seconds = text.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        return float(text)
    except ValueError:
        return None


def _damaged(shown: str, said: str) -> AudioError:
    return AudioError(
        f'Cannot read "{shown}": the file is damaged, cut short or not a media file (ffmpeg: {said}). '
        "Download, export or copy it again."
    )


def audio_track(path: Path, ffprobe: str) -> Track:
    """The track of ``path`` to decode: its default audio stream, else its first. AudioError when there is none."""
    shown, given = str(path), "file:" + str(path.resolve())
    entries = "stream=index,codec_type,codec_name,sample_fmt,sample_rate,channels,bits_per_raw_sample,duration"
    code, out, said = run_quietly(
        [
            ffprobe,
            *("-v", "error", "-of", "json"),
            *("-show_entries", f"{entries}:stream_tags=DURATION:stream_disposition=default,attached_pic"),
            *("-show_entries", "format=duration"),
            given,
        ],
        (given, str(path.resolve())),
    )
    if code != 0:
        raise _damaged(shown, said)
    try:
        shown_json = json.loads(out or b"{}")
        streams = [s for s in shown_json.get("streams", []) if isinstance(s, dict)]
        audio = [s for s in streams if s.get("codec_type") == "audio"]
    except (ValueError, AttributeError):
        raise _damaged(shown, "its streams could not be listed") from None
    if not audio:
        pictures = any(
            s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic") for s in streams
        )
        if pictures:
            raise AudioError(
                f'"{shown}" is a video without a sound track: it holds no audio to separate. '
                "Choose a file with sound, or the video's original with its sound."
            )
        raise AudioError(f'"{shown}" holds no audio track. Choose a song, or export its audio again.')
    chosen = next((s for s in audio if (s.get("disposition") or {}).get("default") == 1), audio[0])
    declared = _seconds(chosen.get("duration")) or _seconds((chosen.get("tags") or {}).get("DURATION"))
    if declared is None and len(streams) == 1:
        declared = _seconds((shown_json.get("format") or {}).get("duration"))
    bits = str(chosen.get("bits_per_raw_sample"))  # "N/A" where the codec has none
    try:
        return Track(
            int(chosen["index"]),
            str(chosen.get("codec_name") or "unknown"),
            int(chosen.get("sample_rate") or 0),
            int(chosen.get("channels") or 0),
            str(chosen.get("sample_fmt") or ""),
            int(bits) if bits.isdigit() else 0,
            declared,
        )
    except (KeyError, TypeError, ValueError):
        raise _damaged(shown, "its audio stream could not be described") from None


def _pcm(track: Track | None) -> tuple[str, int]:
    """The WAV codec that holds ``track``'s decoded samples exactly, and its bytes a sample."""
    fmt = track.sample_format.removesuffix("p") if track is not None else "flt"
    if fmt in ("s16", "u8"):
        return "pcm_s16le", 2
    if fmt == "s32":
        return ("pcm_s24le", 3) if 0 < track.bits <= 24 else ("pcm_s32le", 4)  # type: ignore[union-attr]
    if fmt in ("dbl", "s64"):
        return "pcm_f64le", 8
    return "pcm_f32le", 4


def _room(shown: str, track: Track | None, width: int) -> None:
    """Refuse to start a decoding the temporary folder's disk has no room for, saying where room is needed."""
    if track is None or not track.declared:
        return
    temp = tempfile.gettempdir()
    need = int(track.declared * track.sample_rate * track.channels * width)
    try:
        free = shutil.disk_usage(temp).free
    except OSError:
        return
    if free < need + SPARE_BYTES:
        raise AudioError(_no_room(shown, temp, need, free))


def _no_room(shown: str, temp: str, need: int | None, free: int | None) -> str:
    size = f"about {need / 1e6:,.0f} MB of" if need else "more"
    room = f", which has {free / 1e6:,.0f} MB free" if free is not None else ", which is full"
    return (
        f'Decoding "{shown}" needs {size} temporary space in "{temp}"{room}. Free some space there, or set TMPDIR to '
        "a folder on a disk with room."
    )


def _decode(
    path: Path, source: str, needed_for: str, container: bool, check: Callable[[Track], None] | None
) -> Decoded:
    shown, given = str(path), "file:" + source
    ffmpeg = find_ffmpeg(needed_for)
    track = audio_track(path, find_ffprobe(ffmpeg, needed_for)) if container else None
    if track is not None and check is not None:
        check(track)
    codec, width = _pcm(track)
    _room(shown, track, width)
    _sweep()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        wav = folder / "decoded.wav"
        stream = f"0:{track.index}" if track is not None else "0:a:0"
        code, _, said = run_quietly(
            [
                ffmpeg,
                *("-nostdin", "-hide_banner", "-loglevel", "error"),
                *("-i", given, "-map", stream, "-c:a", codec, "-rf64", "auto", "-f", "wav", str(wav)),
            ],
            (str(wav), str(folder), given, source),
        )
        if code != 0:
            if "No space left" in said:
                raise AudioError(_no_room(shown, tempfile.gettempdir(), None, None))
            raise AudioError(
                f'Cannot decode "{shown}": ffmpeg stopped with "{said}". The file may be damaged; download, export or '
                "copy it again."
            )
        try:
            info = sf.info(str(wav))
        except (sf.LibsndfileError, RuntimeError):
            raise AudioError(f'"{shown}" holds no audio samples: its sound track decodes to nothing.') from None
        if info.frames <= 0:
            raise AudioError(f'"{shown}" holds no audio samples: its sound track decodes to nothing.')
        seconds = info.frames / info.samplerate
        if (
            track is not None
            and track.declared
            and seconds < track.declared - max(TRUNCATED_SECONDS, TRUNCATED_SHARE * track.declared)
        ):
            raise AudioError(
                f'"{shown}" is truncated: its sound track promises {track.declared:.2f} s but only {seconds:.2f} s '
                "decode. Download, export or copy it again."
            )
        return Decoded(
            source,
            folder,
            wav,
            info.frames,
            info.samplerate,
            info.channels,
            info.subtype,
            track.codec.upper() if track is not None else "MP3",
            _version(ffmpeg),
        )
    except BaseException:  # an error, a cancel or Ctrl-C: no decoding left behind
        shutil.rmtree(folder, ignore_errors=True)
        raise
