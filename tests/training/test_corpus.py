"""The teacher-labelled corpus as training windows (stemdesk.training.corpus.load_labelled), on a small labelled cache
written here the way `corpus fetch` and `corpus label` leave one: a manifest, the batch's record and its stems."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from stemdesk.training.corpus import labels_dir, load_labelled

RATE = 44100
MODEL = "tiny-4stem"


def tone(hz: float, seconds: float, level_db: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.shape) * 0.1
    wave = np.sin(2 * np.pi * hz * t) + noise
    wave *= 10 ** (level_db / 20) / np.sqrt(np.mean(wave**2))
    return np.stack([wave, wave * 0.9]).T  # (n, 2)


def labelled_cache(tmp_path, seconds: float = 45.0):
    """One 45-second song whose teacher labels are: vocals at −25 dB (between the unsure bounds: bleed), drums, bass
    and other at −12 dB; and a last 5 seconds of silence."""
    cache = tmp_path / "corpus"
    song = cache / "audio" / "pkg" / "music" / "tune.flac"
    song.parent.mkdir(parents=True)
    levels = {"vocals": -28.0, "drums": -12.0, "bass": -12.0, "other": -12.0}  # vocals −21 dB of the mix
    stems = {name: tone(110 * (i + 1), seconds, db, i) for i, (name, db) in enumerate(levels.items())}
    for audio in stems.values():
        audio[int(40 * RATE) :] = 0
    sf.write(str(song), sum(stems.values()), RATE, subtype="PCM_24")
    row = {"path": str(song.relative_to(cache)), "package": "pkg", "licence": "CC0", "sha256": "abc", "seconds": 45}
    (cache / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    out = labels_dir(cache, MODEL)
    folder = out / "tune"
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(str(folder / f"{name}.flac"), audio, RATE, subtype="PCM_24")
    record = {"status": "done", "input_sha256": "abc", "relative": "tune"}
    (out / "stemdesk-batch.jsonl").write_text(json.dumps(record) + "\n")
    return cache, stems


def test_labelled_windows_keep_sure_labels_and_sum_to_the_song(tmp_path):
    cache, stems = labelled_cache(tmp_path)
    labelled = load_labelled(cache, MODEL, RATE, windows_per_song=5)
    assert labelled.windows == 2 and len(labelled.songs) == 2  # 0–20 s, 20–40 s; no third whole window
    for song in labelled.songs:
        assert song.usable == (False, True, True, True)  # vocals at −21 dB of the mix: unsure, not a target
        audio = song.stems.astype(np.float64) / 32768
        start = int(song.name.rsplit("@", 1)[1].rstrip("s")) * RATE
        meant = np.stack([stems[n][start : start + 20 * RATE].T for n in ("vocals", "drums", "bass", "other")])
        assert np.abs(audio - meant).max() < 1e-3  # the teacher's stems, in order, cut where the window says
    assert labelled.faint == {"vocals": 2}
    assert labelled.summary()["targets"] == ["vocals", "drums", "bass", "other"]


def test_teacher_targets_leave_the_other_sources_in_the_mix_but_not_as_targets(tmp_path):
    cache, _ = labelled_cache(tmp_path)
    everything = load_labelled(cache, MODEL, RATE)
    some = load_labelled(cache, MODEL, RATE, targets=("drums", "bass"))
    assert [s.usable for s in some.songs] == [(False, True, True, False)] * 2
    for a, b in zip(everything.songs, some.songs):
        assert np.array_equal(a.stems, b.stems)  # the same mixes: other is still heard, only not learnt from
    assert some.summary()["targets"] == ["drums", "bass"]
