"""Synthetic multitrack sessions for the trainer's tests of stem sets and folds: each song's named tracks as a
producer's session export holds them (a lead vocal line, two backing lines, a kick, hats, a drum loop that sounds
from 2 to 3 s only, a synth and a track nobody named), tones and noise, one song per seed. The ``sessions``
fixture writes three of them; a test module imports ``sessions_fixture`` for it (a conftest.py in this folder
would hide the tests' own ``conftest`` module, which tests import by that name)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

RATE = 22050
SECONDS = 6.0


def tracks(seed: int) -> dict[str, np.ndarray]:
    """A song's session tracks (length, 2): a lead vocal line, two backing lines, a kick, hats, a drum loop that
    sounds from 2 to 3 s only, a synth, and a track nobody named."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    on = (np.sin(2 * np.pi * 0.5 * t + seed) > -0.3).astype(float)
    lead = 0.25 * np.sin(2 * np.pi * (220 + 20 * seed) * t + 2 * np.sin(2 * np.pi * 5 * t)) * on
    kick = 0.5 * np.sin(2 * np.pi * 50 * t) * np.exp(-(t % 0.5) * 30)
    hats = 0.1 * rng.standard_normal(t.shape) * np.exp(-(t % 0.25) * 60)
    hats = np.convolve(hats, [1, -1], mode="same")  # high-passed noise
    loop = 0.3 * rng.standard_normal(t.shape) * ((t >= 2) & (t < 3))
    made = {
        "VOX LEAD": lead,
        "BGVOX 1": 0.1 * np.sin(2 * np.pi * 660 * t) * (1 - on),
        "BGVOX HARMONY": 0.08 * np.sin(2 * np.pi * 880 * t),
        "KICK": kick,
        "HATS": hats,
        "DRUM LOOP": loop,
        "SYNTH": 0.1 * np.sin(2 * np.pi * 330 * t),
        "MYSTERY": 0.05 * rng.standard_normal(t.shape),
    }
    return {name: np.stack([x, 0.8 * x], axis=1).astype(np.float32) for name, x in made.items()}


def write_session(folder, seed: int, leave_out: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True)
    for name, audio in tracks(seed).items():
        if name not in leave_out:
            sf.write(str(folder / f"{name}.wav"), audio, RATE, subtype="FLOAT")


@pytest.fixture(name="sessions")
def sessions_fixture(tmp_path):
    root = tmp_path / "sessions"
    for seed in range(3):
        write_session(root / f"song {seed}", seed)
    return root
