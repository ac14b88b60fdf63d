"""Signals the tests make for themselves, and a way to call the CLI in-process."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from stemdesk.export import certificate
from stemdesk.export.stems import StemsWriter
from stemdesk.io.formats import OutputFormat

STEM_NAMES, STEM_RATE = ["vocals", "drums", "bass", "other"], 44100

# Screenshots the tests keep for a person to look at: in the clone (git-ignored), never in the system's /tmp.
SHOTS = Path(__file__).resolve().parents[1] / ".test-output"


def screenshot_path(name: str) -> str:
    SHOTS.mkdir(exist_ok=True)
    return str(SHOTS / name)


def script_module(path: Path, name: str):
    """A script that is not a package module (a benchmark, the reliability cases), imported from its path and
    registered in sys.modules, where dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def song(seconds: float = 3.0, rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A test signal with structure a mask net reacts to: a bass tone, a chord, noise bursts. (length, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    base = 0.3 * np.sin(2 * np.pi * 55 * t) + 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659))
    bursts = rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 2 * t) > 0.7) * 0.2
    out = np.stack([base + bursts * (1 + 0.3 * c) for c in range(channels)], axis=1)
    return (out * 0.8 / np.abs(out).max()).astype(np.float32)


def small_configs() -> dict[str, dict]:
    """Per registered estimator, config overrides that make it small enough for fast tests."""
    two = ["vocals", "accompaniment"]
    roformer = dict(dim=8, depth=1, dim_head=4, heads=2, n_fft=256, hop=64, win_length=256, segment=8192)
    return {
        "band_mlp": {"bands": 8, "hidden": 8},
        "open_unmix": {"hidden": 16, "layers": 1},
        "deep_karaoke": {"sources": two, "window": 6, "filters": [4], "hidden": 16},
        "roma_cnn": {"filters": [4], "hidden": 16, "context_frames": 5},
        "lin_cnn": {"sources": two, "filters": [4], "hidden": 16},
        "unet": {"base": 2, "patch": 64, "max_bins": 256},
        "densenet": {"growth": 4, "layers": 1, "levels": 2, "max_bins": 256},
        "mmdensenet": {"growth": 4, "layers": 1, "levels": 2, "max_bins": 256, "bands": [0, 64, 128]},
        "cascade": {
            "first": {
                "kind": "unet",
                "config": {"sources": two, "mask": "sigmoid", "residual": True, "base": 2, "patch": 0, "max_bins": 256},
            },
            "second": {"kind": "open_unmix", "config": {"hidden": 16, "layers": 1}},
        },
        "refined": {"base": {"kind": "band_mlp", "config": {"bands": 8, "hidden": 8}}, "dim": 4, "dilations": [1, 2]},
        "htdemucs": {
            "width": 8,
            "bottom_channels": 16,
            "transformer_layers": 2,
            "heads": 2,
            "nfft": 512,
            "segment": 8192,
        },
        "bag": {  # two tiny HTDemucs, the second weighted for two stems only
            "members": [
                {
                    "kind": "htdemucs",
                    "config": dict(width=8, bottom_channels=16, transformer_layers=2, heads=2, nfft=512, segment=8192),
                },
                {
                    "kind": "htdemucs",
                    "config": dict(width=8, bottom_channels=8, transformer_layers=1, heads=2, nfft=512, segment=8192),
                },
            ],
            "weights": [[1.0, 1.0, 1.0, 1.0], [0.5, 0.0, 2.0, 0.0]],
        },
        "umx": {"hidden": 16, "layers": 1, "max_bin": 400},
        "bs_roformer": {**roformer, "freqs_per_bands": [8, 8, 16, 32, 65]},
        "mel_band_roformer": {**roformer, "num_bands": 8},
        "mdx23c": {
            "n_fft": 512,
            "hop": 128,
            "dim_f": 256,
            "num_subbands": 2,
            "num_scales": 2,
            "num_blocks_per_scale": 1,
            "width": 8,
            "growth": 8,
            "bottleneck_factor": 2,
            "segment": 8064,
        },
    }


def run(*argv) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr)."""
    from stemdesk.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_stems_null(song, paths, depth: str) -> None:
    """Every stem has the song's rate, length and channels, and `stemdesk nullcheck` passes: bit-exact for
    16/24-bit PCM, at most −138 dBFS for 32-bit float."""
    import json

    import soundfile as sf

    source = sf.info(str(song))
    for path in paths:
        info = sf.info(str(path))
        assert (info.samplerate, info.frames, info.channels) == (source.samplerate, source.frames, source.channels)
    code, out, _ = run("nullcheck", song, *paths)
    result = json.loads(out)
    assert code == 0 and result["passed"]
    if depth == "32f":
        assert result["peak_dbfs"] is None or result["peak_dbfs"] <= -138
    else:
        assert result["bit_exact"] and result["max_abs"] == 0.0


def make_stems(
    folder: Path, depth: str = "24", seconds: float = 4.0, seed: int = 0, names=STEM_NAMES, channels: int = 2
) -> tuple[Path, Path]:
    """A mixture file and stems that null against it (written the way `stemdesk separate` writes them)."""
    rng = np.random.default_rng(seed)
    mix = song(seconds, STEM_RATE, channels, seed).T.astype(np.float64)  # (channels, length)
    weights = rng.dirichlet(np.ones(len(names)), size=mix.shape[-1]).T[:, None, :]  # (sources, 1, length)
    stems = weights * mix[None]
    mixture = folder / "mixture.wav"
    sf.write(str(mixture), mix.T, STEM_RATE, subtype="FLOAT" if depth == "32f" else f"PCM_{depth}")
    mix_read = sf.read(str(mixture), dtype="float64", always_2d=True)[0].T
    fmt = OutputFormat.parse("wav", depth)
    out = folder / "stems"
    with StemsWriter(out, list(names), STEM_RATE, channels, fmt) as writer:
        writer.write(stems, mix_read)
        writer.commit(lambda temps: certificate.build("stems", mixture, {"test": True}))
    return mixture, out


def probe_streams(path: Path) -> list[dict]:
    """The audio streams of a media file as ffprobe (not StemDesk) reports them."""
    import json
    import subprocess

    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True, check=True
    )
    return [s for s in json.loads(shown.stdout)["streams"] if s["codec_type"] == "audio"]


def stem_box(path: Path) -> dict:
    """The JSON of an NI Stem file's moov/udta/stem box, found by walking the MP4 boxes here (not with StemDesk's
    writer): each box is a 32-bit size (1: a 64-bit size follows), a type, the body."""
    import json
    import struct

    data = Path(path).read_bytes()

    def children(start: int, end: int) -> dict[bytes, tuple[int, int]]:
        found, position = {}, start
        while position < end:
            size, kind = struct.unpack(">I4s", data[position : position + 8])
            body = position + 8
            if size == 1:
                size, body = struct.unpack(">Q", data[body : body + 8])[0], body + 8
            found.setdefault(kind, (body, position + size))
            position += size
        return found

    moov = children(0, len(data))[b"moov"]
    udta = children(*moov)[b"udta"]
    body, end = children(*udta)[b"stem"]
    return json.loads(data[body:end])


MULTITRACK_RATE = 22050


def parts(seed: int, seconds: float = 4.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * MULTITRACK_RATE)) / MULTITRACK_RATE
    env = (np.sin(2 * np.pi * (0.7 + 0.1 * seed) * t) > 0).astype(float)
    signals = {
        "vocals": 0.2 * np.sin(2 * np.pi * (300 + 40 * seed) * t + 3 * np.sin(2 * np.pi * 5 * t)) * env,
        "drums": 0.3 * rng.standard_normal(t.shape) * np.exp(-(t % 0.5) * 20),
        "bass": 0.3 * np.sin(2 * np.pi * (50 + 5 * seed) * t),
        "other": 0.1 * rng.standard_normal(t.shape),
    }
    return {k: np.stack([v, 0.9 * v], axis=1) for k, v in signals.items()}


def write_song(folder, stems, mixture=True, names=None):
    folder.mkdir(parents=True)
    for source, audio in stems.items():
        sf.write(str(folder / f"{(names or {}).get(source, source)}.wav"), audio, MULTITRACK_RATE, subtype="FLOAT")
    if mixture is True:
        sf.write(str(folder / "mixture.wav"), sum(stems.values()), MULTITRACK_RATE, subtype="FLOAT")
    elif mixture is not None:
        sf.write(str(folder / "mixture.wav"), mixture, MULTITRACK_RATE, subtype="FLOAT")


def small_estimator(kind: str, **overrides):
    """A registered estimator made small (`small_configs`), seeded, for the four usual sources."""
    import torch

    from stemdesk.core.estimators import BUILTIN_ESTIMATORS, Estimator, build_estimator

    stft = {"stft": {"n_fft": 1024, "hop": 256}} if issubclass(BUILTIN_ESTIMATORS[kind], Estimator) else {}
    config = {"sources": STEM_NAMES, **stft, **small_configs().get(kind, {}), **overrides}
    torch.manual_seed(0)
    return build_estimator(kind, config)


def flat_tiny():
    """tiny-4stem with its last layer zeroed: every mask equal, so a few fine-tuning steps beat it."""
    import torch

    from stemdesk.io.model_store import load_estimator

    flat, card = load_estimator("tiny-4stem")
    with torch.no_grad():
        for name, parameter in flat.named_parameters():
            if name.startswith("out"):
                parameter.zero_()
    return flat, card


def shipped_default_plain():
    """The shipped stemdesk-4stem and its cascade without the band-split correction on its second stage: the
    trained BiLSTM stage it corrects ("second.base." → "second."), as the plain cascade the correction was put on.
    Returns (shipped, plain, plain's config)."""
    from stemdesk.core.estimators import build_estimator
    from stemdesk.io.model_store import load_estimator

    shipped, card = load_estimator("stemdesk-4stem")
    config = card.raw["training"]["config"]["config"]
    assert config["second"]["kind"] == "refined", "the shipped default's second stage carries a correction"
    plain_config = {**config, "second": config["second"]["config"]["base"]}
    state = {
        k.replace("second.base.", "second.", 1): v
        for k, v in shipped.state_dict().items()
        if not k.startswith("second.") or k.startswith("second.base.")
    }
    plain = build_estimator("cascade", plain_config)
    plain.load_state_dict(state)  # strict: every parameter of the plain cascade, none left over
    return shipped.eval(), plain.eval(), plain_config


def private_pulse(runtime: Path, sink: str):
    """Start a private PulseAudio server with one null sink named ``sink`` in its own runtime folder (never a
    desktop's own server) and wait up to 10 s for its socket, ``runtime / "native"``: the process, or None when
    pulseaudio is not installed. Point PULSE_SERVER at the socket (before Qt starts) to use it."""
    import shutil
    import subprocess
    import time

    if shutil.which("pulseaudio") is None:
        return None
    socket = runtime / "native"
    server = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            f"--load=module-null-sink sink_name={sink}",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
        ],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.05)
    return server


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (Linux: a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


# A small refined estimator (a band-split correction on an Open-Unmix base), for the refined and cascade tests.
REFINED_BASE = {
    "sources": ["vocals", "drums", "bass", "other"],
    "stft": {"n_fft": 4096, "hop": 1024},
    "channels": 2,
    "hidden": 16,
    "layers": 1,
    "max_freq": 16000.0,
}
REFINED_SHARED = {k: REFINED_BASE[k] for k in ("sources", "stft", "channels")}


def refined(**settings):
    import torch

    from stemdesk.core.estimators import build_estimator

    torch.manual_seed(0)
    config = {**REFINED_SHARED, "base": {"kind": "open_unmix", "config": REFINED_BASE}, **settings}
    return build_estimator("refined", config)


def mags(frames: int, seed: int = 1):
    """Random magnitudes (1, channels, bins, frames) of the refined tests' STFT."""
    import torch

    return 3 * torch.rand(1, 2, 2049, frames, generator=torch.Generator().manual_seed(seed))


def small_htdemucs():
    """A random HTDemucs, small (a waveform model: drums, bass, other, vocals at 22.05 kHz), with its residual
    branches switched on (layer scales 0.5 instead of the near-zero start)."""
    import torch

    from stemdesk.core.estimators.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(
        sample_rate=22050, width=8, bottom_channels=16, transformer_layers=2, heads=2, nfft=512, segment=8192
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".scale"):
                parameter.fill_(0.5)
    return model.eval()


def install_small_htdemucs(folder: Path, monkeypatch) -> str:
    """`small_htdemucs` saved as the model "small-htdemucs" in ``folder``, which STEMDESK_MODELS_PATH names."""
    from stemdesk.io.model_store import save_model

    save_model(folder / "small-htdemucs", "small-htdemucs", small_htdemucs(), {"description": "random weights"})
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(folder))
    return "small-htdemucs"


def tiny_split_model(
    name: str = "tiny-split",
    parent: str = "vocals",
    children=("lead", "backing"),
    caution: tuple[str, str] | None = None,
) -> str:
    """A small split model of ``parent`` into ``children``, saved among the user's models (the test's home):
    untrained, since what it splits is not the point where it is used. ``caution``: (a few words, the sentence) its
    card warns of itself with, as a split worse than an equal split on unheard songs does."""
    import torch

    from stemdesk.core.estimators import build_estimator
    from stemdesk.io.model_store import save_model, user_models_dir

    torch.manual_seed(0)
    estimator = build_estimator("band_mlp", {"sources": list(children), "stft": {"n_fft": 1024, "hop": 256}})
    facts: dict = {"description": "test split model", "purpose": "split", "split": {"parent": parent}}
    if caution is not None:
        facts["unheard"] = {"short": caution[0], "caution": caution[1]}
    save_model(user_models_dir() / name, name, estimator, facts)
    return name


def rpp_midi(text: str) -> dict[str, list[tuple[float, float, int, int]]]:
    """Each MIDI track of a REAPER project (named "... MIDI"): its notes as (start s, end s, pitch, channel), from
    the item's in-project events (in the ticks a quarter note its HASDATA line gives) at the project's tempo."""
    bpm = next(float(line.split()[1]) for line in text.splitlines() if line.strip().startswith("TEMPO"))
    tracks: dict[str, list] = {}
    name, now, sounding, ppq = None, 0, {}, 0
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("NAME") and line.endswith('MIDI"'):
            name = line[6:-1]
            tracks[name], now, sounding = [], 0, {}
        elif line.startswith("HASDATA"):
            ppq = int(line.split()[2])
        elif line.startswith("E ") and name:
            delta, status, data1, _ = line.split()[1:]
            now += int(delta)
            kind, channel, pitch = int(status, 16) & 0xF0, int(status, 16) & 0x0F, int(data1, 16)
            seconds = now / ppq * 60 / bpm
            if kind == 0x90:
                sounding[pitch] = seconds
            elif kind == 0x80:
                tracks[name].append((sounding.pop(pitch), seconds, pitch, channel))
    return tracks


def sung_line(text: str, start: float, length: float = 0.4, gap: float = 0.1, part: str = "lead"):
    """A karaoke `Line` of ``text``'s words from ``start``: each ``length`` seconds, ``gap`` apart."""
    from stemdesk.karaoke.model import Line, Word

    words, at = [], start
    for word in text.split():
        words.append(Word(word, at, at + length))
        at += length + gap
    return Line(words, part=part)


def karaoke_lyrics():
    """Timed lyrics for the karaoke screens' tests: four lines from 6 s (after the title; the third the backing
    part's), then a gap of 13 s and one line at 30 s."""
    from stemdesk.karaoke.model import Lyrics

    return Lyrics(
        [
            sung_line("Hello darkness my old friend", 6.0),
            sung_line("I've come to talk with you again", 9.0),
            sung_line("Because a vision softly creeping", 12.5, part="backing"),
            sung_line("Left its seeds while I was sleeping", 15.5),
            sung_line("After the gap", 30.0),
        ],
        title="The Sound of Tests",
        artist="StemDesk Band",
    )
