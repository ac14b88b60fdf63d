"""A demo song for a first run with no file of the user's.

Preferred: a real song with vocals from Debian's archive (``fretsonfire-songs-muldjord``, Frets on Fire's songs by
Muldjord, CC BY-SA 3.0), fetched with ``apt-get download`` (no root needed): its ``song.ogg`` and ``guitar.ogg`` are
summed into one mixture. Without apt, a synthesised song (drums, bass, chords and a sung vowel line) is written.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .audio import read, write
from .formats import OutputFormat
from .paths import cache_dir

DEMO_PACKAGE = "fretsonfire-songs-muldjord"
DEMO_SECONDS = 60


def fetch_debian_song(target: Path, seconds: float = DEMO_SECONDS) -> Path | None:
    """Download the Debian package, mix one song's stems, write ``target`` (WAV). None when apt is unavailable."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        fetched = subprocess.run(["apt-get", "download", DEMO_PACKAGE], cwd=work, capture_output=True, text=True)
        debs = list(work.glob("*.deb"))
        if fetched.returncode != 0 or not debs:
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], check=True, capture_output=True)
        songs = sorted(p.parent for p in (work / "x").rglob("guitar.ogg") if (p.parent / "song.ogg").is_file())
        if not songs:
            return None
        folder = songs[0]
        song, rate = read(folder / "song.ogg")
        guitar, rate_g = read(folder / "guitar.ogg")
        n = min(song.shape[1], guitar.shape[1], int(seconds * rate))
        start = min(int(30 * rate), max(0, min(song.shape[1], guitar.shape[1]) - n))
        mix = song[:, start : start + n] + guitar[:, start : start + n]
        mix *= min(1.0, 0.95 / max(1e-9, float(np.abs(mix).max())))
        write(target, mix, rate, OutputFormat("wav", "16"))
        credits = _song_credits(folder / "song.ini")
        target.with_suffix(".txt").write_text(
            f"{credits}, {n / rate:.0f} s from {start / rate:.0f} s: song.ogg + guitar.ogg from the Debian package "
            f"{DEMO_PACKAGE} (CC BY-SA 3.0).\n",
            encoding="utf-8",
        )
        return target


def _song_credits(ini: Path) -> str:
    fields = {}
    if ini.is_file():
        for line in ini.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    return f"{fields.get('artist', 'Muldjord')} – {fields.get('name', ini.parent.name)}"


def synthesise_song(target: Path, seconds: float = 30.0, rate: int = 44100, seed: int = 0) -> Path:
    """A stereo song with four real parts: kick/snare/hat drums, a bass line, pad chords and a vowel-like voice."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    beat = 60 / 110
    drums = np.zeros(n)
    for k, onset in enumerate(np.arange(0, seconds, beat / 2)):
        i = int(onset * rate)
        m = min(n - i, int(0.3 * rate))
        tt = np.arange(m) / rate
        if k % 4 == 0:
            drums[i : i + m] += np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 12)
        elif k % 4 == 2:
            drums[i : i + m] += rng.standard_normal(m) * np.exp(-tt * 25) * 0.5
        drums[i : i + m // 6] += rng.standard_normal(m // 6) * np.exp(-tt[: m // 6] * 80) * 0.15
    roots = [55.0, 73.42, 61.74, 82.41]
    bar = 4 * beat
    root = np.array([roots[int(x // bar) % 4] for x in t])
    bass = np.tanh(2 * np.sin(2 * np.pi * np.cumsum(root) / rate)) * 0.35
    pad = sum(np.sin(2 * np.pi * np.cumsum(root * 4 * r) / rate) for r in (1, 1.26, 1.5)) * 0.08
    melody = np.array([[4, 5, 6, 5, 4, 3, 4, 6][int(x // beat) % 8] for x in t]) * root
    phase = 2 * np.pi * np.cumsum(melody * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / rate
    phrases = np.sin(2 * np.pi * t / (2 * bar)) > -0.3  # the voice is silent for part of every two bars
    voice = sum(np.sin(h * phase) / h * (1.0 if h in (2, 3, 5) else 0.3) for h in range(1, 9)) * 0.12 * phrases
    left = drums * 0.8 + bass + pad * 1.2 + voice
    right = drums * 0.8 + bass + pad * 0.8 + voice
    mix = np.stack([left, right], axis=1)
    mix *= 0.9 / np.abs(mix).max()
    write(target, mix.T.astype(np.float32), rate, OutputFormat("wav", "16"))
    return target


def demo_folder() -> Path:
    """Where the demo song is kept: the user's cache, never the stems folder the demo writes into."""
    return cache_dir() / "demo"


def make_demo(folder: Path | None = None) -> Path:
    """The demo song in ``folder`` (default `demo_folder`), reusing one made before."""
    folder = folder or demo_folder()
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in (folder / "demo-song.wav", folder / "demo-synth.wav") if p.is_file()]
    if existing:
        return existing[0]
    song = fetch_debian_song(folder / "demo-song.wav")
    return song if song is not None else synthesise_song(folder / "demo-synth.wav")
