"""The lyrics spoken by espeak-ng, a speech synthesiser: the aligner's reference of how the words sound, with each
word's span in the synthetic speech (so a warp from the speech onto the sung vocal carries the words with it).

espeak-ng is a system library (Debian/Ubuntu: ``apt install espeak-ng``; macOS: ``brew install espeak-ng``;
Windows: the installer from github.com/espeak-ng/espeak-ng/releases). It is loaded through ctypes, so nothing is
compiled against it; `available` says whether it loaded, `INSTALL_HINT` what to do when it did not. The whole text is
spoken in one call, as SSML with a mark before and after every word: the marks' audio positions are the word spans.
It is spoken in a child process (this module run as a script), because espeak-ng keeps state from one text to the
next and speaks the same text slightly differently the second time (up to 40 ms a word over a song); a fresh process
speaks it the same way every time, so an alignment is reproducible.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from ..core.errors import StemDeskError

INSTALL_HINT = (
    "Install espeak-ng for phonetic alignment (Debian/Ubuntu: sudo apt install espeak-ng; macOS: brew install "
    "espeak-ng; Windows: the espeak-ng installer from github.com/espeak-ng/espeak-ng/releases)."
)
VOICES = {"es": "es", "fr": "fr", "de": "de", "en": "en-us"}  # languages the aligner speaks; others: by name
LINE_BREAK_MS = 300  # a pause spoken between lines: where the sung vocal may rest
RATE_WPM = 120  # speaking rate (words per minute): slower than espeak-ng's 175, nearer a sung line's pace

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_SSML = 0x10
_EVENT_LIST_TERMINATED = 0
_EVENT_MARK = 3
_RATE_PARAMETER = 1


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_sample_rate = 0
_load_error: str | None = None


class SpeechUnavailable(StemDeskError):
    """espeak-ng cannot speak these words here: it is missing, has no voice for the language, or failed."""


@dataclass
class Speech:
    """samples: (samples,) float32 mono at ``rate`` Hz; words: (words, 2) each word's start and end in seconds, in the
    order given; lines: (lines, 2) each line's start and end."""

    samples: np.ndarray
    rate: int
    words: np.ndarray
    lines: np.ndarray


def _load() -> ctypes.CDLL | None:
    global _library, _sample_rate, _load_error
    if _library is not None or _load_error is not None:
        return _library
    names = [ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1", "libespeak-ng.dylib", "libespeak-ng.dll"]
    for name in filter(None, names):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if rate <= 0:
            _load_error = f"espeak-ng was found ({name}) but did not start (its data may be missing)."
            return None
        _library, _sample_rate = library, rate
        return library
    _load_error = "espeak-ng is not installed."
    return None


def available() -> bool:
    """Whether espeak-ng's library loads on this machine."""
    with _lock:
        return _load() is not None


def speak(lines: list[list[str]], language: str) -> Speech:
    """lines: per line, its words as written. The words spoken in ``language`` (ISO 639-1, a key of VOICES, or an
    espeak-ng voice name), a pause of LINE_BREAK_MS between lines. Raises SpeechUnavailable when espeak-ng is missing,
    has no voice for the language or fails."""
    parts = ["<speak>"]
    index = 0
    for line in lines:
        for word in line:
            parts.append(f'<mark name="s{index}"/>{escape(word)} <mark name="e{index}"/>')
            index += 1
        parts.append(f'<break time="{LINE_BREAK_MS}ms"/>')
    parts.append("</speak>")
    ssml = "".join(parts).encode("utf-8")
    voice = VOICES.get(language, language)
    if getattr(sys, "frozen", False):  # a bundled app has no interpreter to start: speak here
        rate, samples, marks = _synthesize(ssml, voice, RATE_WPM)
    else:
        # a fresh process for each text: espeak-ng keeps state between texts in one process, and the same words come
        # out a little differently the second time; a child speaks them the same way every time
        child = subprocess.run(
            [sys.executable, "-m", __name__, voice, str(RATE_WPM)],
            input=ssml,
            capture_output=True,
            check=False,
            timeout=600,
        )
        if child.returncode != 0:
            said = child.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {child.returncode}"]
            raise SpeechUnavailable(said[-1].removeprefix("SpeechUnavailable: "))
        header, _, audio = child.stdout.partition(b"\n")
        head = json.loads(header)
        rate, samples, marks = head["rate"], np.frombuffer(audio, np.int16), head["marks"]
    samples = samples.astype(np.float32) / 32768
    seconds = len(samples) / rate
    words = np.zeros((index, 2))
    last = 0.0
    for k in range(index):  # a mark espeak-ng dropped takes the one before it: spans stay in order
        start = max(marks.get(f"s{k}", last), last)
        end = max(marks.get(f"e{k}", start), start)
        words[k] = start, min(end, seconds)
        last = end
    line_spans, k = [], 0
    for line in lines:
        line_spans.append((words[k, 0], words[k + len(line) - 1, 1]) if line else (words[k - 1, 1],) * 2)
        k += len(line)
    return Speech(samples, rate, words, np.array(line_spans).reshape(-1, 2))


def _synthesize(ssml: bytes, voice: str, words_per_minute: int = RATE_WPM) -> tuple[int, np.ndarray, dict[str, float]]:
    """(rate, samples (samples,) int16, each mark's time in seconds) of ``ssml`` spoken by ``voice``."""
    chunks: list[np.ndarray] = []
    marks: dict[str, float] = {}
    with _lock:
        library = _load()
        if library is None:
            raise SpeechUnavailable(f"{_load_error} {INSTALL_HINT}")

        def receive(wav, count, events) -> int:  # called by espeak-ng for each chunk of audio it made
            if count > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            k = 0
            while events[k].type != _EVENT_LIST_TERMINATED:
                if events[k].type == _EVENT_MARK and events[k].id.name:
                    marks[events[k].id.name.decode()] = events[k].audio_position / 1000
                k += 1
            return 0

        callback = _CALLBACK(receive)  # kept alive until espeak_Synth returns
        library.espeak_SetSynthCallback(callback)
        if library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechUnavailable(f'espeak-ng has no voice "{voice}"; the aligner speaks {", ".join(VOICES)}.')
        library.espeak_SetParameter(_RATE_PARAMETER, words_per_minute, 0)
        text = ssml + b"\0"
        status = library.espeak_Synth(text, len(text), 0, 0, 0, _CHARS_UTF8 | _SSML, None, None)
        library.espeak_SetSynthCallback(_CALLBACK())
    if status != 0:
        raise SpeechUnavailable(f"espeak-ng could not speak the lyrics (error {status}).")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return _sample_rate, samples, marks


if __name__ == "__main__":  # the child `speak` starts: SSML on stdin, a JSON header line and int16 audio on stdout
    try:
        rate, audio, found = _synthesize(sys.stdin.buffer.read(), sys.argv[1], int(sys.argv[2]))
    except SpeechUnavailable as error:
        sys.exit(f"SpeechUnavailable: {error}")
    sys.stdout.buffer.write(json.dumps({"rate": rate, "marks": found}).encode() + b"\n" + audio.tobytes())
