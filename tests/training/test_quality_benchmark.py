"""benchmarks/quality.py's held-out scoring: song by song through a cache that a killed or repeated run reuses,
which a changed song or other weights do not hit, and the section it writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import script_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quality():
    return script_module(ROOT / "benchmarks" / "quality.py", "quality_benchmark")


def write_song(folder: Path, seed: int, bass: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    rate, n = 44100, 3 * 44100
    t = np.arange(n) / rate
    stems = {
        "vocals": np.zeros(n),
        "drums": (rng.random(n) < 0.001) * rng.standard_normal(n) * 0.8,
        "bass": 0.3 * np.sin(2 * np.pi * 55 * t) * bass,
        "other": 0.1 * np.sin(2 * np.pi * 660 * t) + 0.02 * rng.standard_normal(n),
    }
    folder.mkdir(parents=True)
    for name, mono in stems.items():
        sf.write(folder / f"{name}.flac", np.stack([mono, mono], axis=1), rate, subtype="PCM_24")
    (folder / "meta.json").write_text(json.dumps({"source": "LMMS demo project test", "seconds": 3.0}))
    return folder


def test_held_out_songs_are_scored_once_and_the_cache_follows_the_songs_and_the_weights(quality, tmp_path, monkeypatch):
    songs = [write_song(tmp_path / "songs" / "a", 0), write_song(tmp_path / "songs" / "b", 1, bass=False)]
    models, notes = quality.installed(["tiny-4stem", "no-such-model"])
    assert [m[0] for m in models] == ["tiny-4stem"] and "no-such-model: not scored" in notes[0]
    cache = quality.ScoreCache(tmp_path / "cache" / "scores.json")
    first = quality.score_all(models, songs, cache)
    systems = [row["system"] for row in first]
    assert systems == ["oracle_irm", "oracle_mix", "tiny-4stem"]
    tiny = first[-1]
    # silent references are left out: no vocals anywhere, no bass in song b
    assert set(tiny["usdr_per_song"]["a"]) == {"drums", "bass", "other", "accompaniment"}
    assert "bass" not in tiny["usdr_per_song"]["b"] and "vocals" not in tiny["usdr"]
    assert tiny["usdr"]["other"] == round(float(np.median([s["other"] for s in tiny["usdr_per_song"].values()])), 2)
    assert first[0]["usdr"]["drums"] > tiny["usdr"]["drums"]  # the oracle is an oracle

    # run again: every score comes from the cache, so nothing is separated or scored at all
    again = quality.ScoreCache(cache.path)
    with monkeypatch.context() as patched:
        patched.setattr(quality, "separate_song", lambda *a: pytest.fail("separated again"))
        patched.setattr(quality.scoring, "oracle_row", lambda *a: pytest.fail("scored again"))
        assert [r["usdr"] for r in quality.score_all(models, songs, again)] == [r["usdr"] for r in first]
    # a song whose files change is scored again; the other is not
    keys = set(again.scores)
    write_song(tmp_path / "songs" / "c", 2).joinpath("other.flac").replace(songs[1] / "other.flac")
    quality.score_all(models, songs, again)
    added = set(again.scores) - keys
    assert len(added) == 3 and all("|b|" in key for key in added)

    lines = quality.held_out_section(first, songs)
    text = "\n".join(lines)
    assert "## Held-out songs" in text and "2 songs" in text and "LMMS" in text
    assert "| system | vocals (0) | accompaniment (2) | drums (2) | bass (1) | other (2) |" in text
    assert "None of these songs has vocals" in text  # what accompaniment means there


def test_a_run_keeps_the_sections_it_does_not_write_again(quality, tmp_path):
    """Without --speed the speed table stays; sections written by hand stay; what this run writes is replaced."""
    page = tmp_path / "quality.md"
    page.write_text(
        "# Validation quality\n\nold table\n\n## Teacher gap\n\nold gap\n\n## Speed and memory\n\nmeasured once\n\n"
        "## Ensembles (`lab/benchmarks/ensemble.py`)\n\nby hand\n"
    )
    kept = "\n".join(quality.kept_sections(page, ["# Validation quality", "", "## Teacher gap", "", "new gap"]))
    assert "measured once" in kept and "by hand" in kept
    assert "old gap" not in kept and "old table" not in kept


def test_compare_pairs_each_model_with_the_base_song_by_song_without_the_oracles(quality, tmp_path):
    """--compare prints the per-song comparison a candidate needs (medians move by tenths of a dB between
    candidates); --no-oracles scores the models only (the oracles' whole-song masks need about 10 GB)."""
    songs = [write_song(tmp_path / "songs" / name, seed) for seed, name in enumerate("abc")]
    models, _ = quality.installed(["tiny-4stem", "stemdesk-4stem-lite"])
    rows = quality.score_all(models, songs, quality.ScoreCache(tmp_path / "scores.json"), oracles=False)
    assert [row["system"] for row in rows] == ["tiny-4stem", "stemdesk-4stem-lite"]
    lines = quality.paired_lines(rows, "tiny-4stem", "three songs")
    assert "Against tiny-4stem, song by song, on three songs:" in lines
    drums = next(line for line in lines if line.startswith("| stemdesk-4stem-lite | drums |"))
    tiny, lite = (row["usdr_per_song"] for row in rows)
    changes = [lite[s]["drums"] - tiny[s]["drums"] for s in "abc"]
    higher = sum(c > 0 for c in changes)
    assert f"{np.mean(changes):+.2f} / {np.median(changes):+.2f}" in drums and f"| {higher} of 3 |" in drums
    assert not any(line.startswith("| tiny-4stem |") for line in lines)  # the base is not compared with itself
    assert "vocals" not in "".join(lines)  # no song has vocals: nothing to compare


def test_no_oracles_is_refused_when_the_page_would_be_written():
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--no-oracles"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--no-oracles needs --no-write" in done.stderr


def test_a_candidate_folder_is_scored_under_its_name_and_carries_its_comparison_in_its_card(quality, tmp_path):
    """NAME=FOLDER scores a model that is not installed (a run's export) under NAME; --record-as writes its
    per-song comparison with the base into that folder's card (and README), with the base's weights' sha256, the
    way a new default carries metrics.against_previous_default. The base's card is left alone."""
    import shutil

    from stemdesk.io.model_store import find_model, read_card

    songs = [write_song(tmp_path / "songs" / name, seed) for seed, name in enumerate("abc")]
    held = [write_song(tmp_path / "held" / name, seed + 5) for seed, name in enumerate("de")]
    candidate = tmp_path / "run" / "stemdesk-4stem-lite"
    shutil.copytree(find_model("stemdesk-4stem-lite").folder, candidate)
    base_card = (find_model("tiny-4stem").folder / "card.json").read_text()
    models, _ = quality.installed(["tiny-4stem", f"new={candidate}"])
    assert [m[0] for m in models] == ["tiny-4stem", "new"]
    cache = quality.ScoreCache(tmp_path / "scores.json")
    sets = {
        "validation": quality.score_all(models, songs, cache, oracles=False),
        "held_out:held": quality.score_all(models, held, cache, oracles=False),
    }
    assert [row["system"] for row in sets["validation"]] == ["tiny-4stem", "new"]
    quality.record_comparison(models, sets, "tiny-4stem", "against_previous_default")
    card = read_card(candidate)
    entry = card.raw["metrics"]["against_previous_default"]
    assert entry["base_weights_sha256"] == find_model("tiny-4stem").weights_sha256
    assert entry["validation"]["songs"] == 3 and entry["held_out:held"]["songs"] == 2
    tiny, new = (row["usdr_per_song"] for row in sets["validation"])
    changes = [new[s]["drums"] - tiny[s]["drums"] for s in "abc"]
    drums = entry["validation"]["stems"]["drums"]
    assert drums["mean_change_db"] == round(float(np.mean(changes)), 2)
    assert drums["higher_on"] == sum(c > 0 for c in changes) and drums["songs"] == 3
    assert card.raw["metrics"]["validation_usdr_median_db"]  # the card's own facts stay
    readme = (candidate / "README.md").read_text()
    assert "## Against tiny-4stem (metrics.against_previous_default)" in readme
    assert f"| validation (3) | drums | {drums['median_db'][0]:.2f} → {drums['median_db'][1]:.2f} |" in readme
    assert (find_model("tiny-4stem").folder / "card.json").read_text() == base_card
