"""`stemdesk separate --model A+B`: the written stems of an ensemble sum to the mix bit for bit, with --shifts too;
the certificate and the summary name the members; members with other stems are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import install_small_htdemucs, run

STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture
def small_htdemucs(tmp_path, monkeypatch) -> str:
    """A random HTDemucs, small, installed as "small-htdemucs": a waveform model (drums, bass, other, vocals) at
    22.05 kHz, so an ensemble with tiny-4stem (a mask model at 44.1 kHz) mixes both kinds and both rates."""
    return install_small_htdemucs(tmp_path / "models", monkeypatch)


def summed_against_the_mix(song, folder, extension: str = "wav") -> tuple[np.ndarray, np.ndarray]:
    """The stems' integer samples summed, and the mix's, read from the files (int32 full scale, summed in int64)."""
    stems = [sf.read(str(folder / f"{s}.{extension}"), dtype="int32", always_2d=True)[0] for s in STEMS]
    mix = sf.read(str(song), dtype="int32", always_2d=True)[0]
    return np.sum(np.stack(stems).astype(np.int64), axis=0), mix.astype(np.int64)


@pytest.mark.parametrize("depth, rate", [("16", 44100), ("24", 48000)])
def test_an_ensemble_of_a_mask_and_a_waveform_model_writes_stems_that_sum_to_the_mix_exactly(
    tmp_path, song_file, small_htdemucs, depth, rate
):
    song = song_file("song.wav", seconds=3.0, rate=rate, subtype=f"PCM_{depth}")
    model = f"tiny-4stem+{small_htdemucs}*2"
    code, out, err = run("separate", song, "-o", tmp_path / "ens", "--model", model, "--bit-depth", depth)
    assert code == 0, err
    folder = tmp_path / "ens" / "song"
    total, mix = summed_against_the_mix(song, folder)
    assert total.shape == mix.shape == (3 * rate, 2)
    assert np.array_equal(total, mix)  # bit for bit, read back from the files
    assert "ensemble of tiny-4stem and small-htdemucs (weight 2)" in out
    certificate = json.loads((folder / "stemdesk-certificate.json").read_text())
    assert certificate["null"]["bit_exact"]
    assert certificate["model"]["id"] == model and certificate["model"]["estimator"] == "ensemble"
    members = certificate["model"]["members"]
    assert [(m["id"], m["estimator"], m["weight"]) for m in members] == [
        ("tiny-4stem", "band_mlp", 1.0),
        ("small-htdemucs", "htdemucs", 2.0),
    ]
    assert all(len(m["weights_sha256"]) == 64 for m in members)
    assert [o["file"] for o in certificate["outputs"]] == [f"{s}.wav" for s in STEMS]  # the first member's order
    # the ensemble is neither member alone
    code, _, err = run("separate", song, "-o", tmp_path / "tiny", "--model", "tiny-4stem", "--bit-depth", depth)
    assert code == 0, err
    alone = sf.read(str(tmp_path / "tiny" / "song" / "vocals.wav"), dtype="int32")[0].astype(np.int64)
    together = sf.read(str(folder / "vocals.wav"), dtype="int32")[0].astype(np.int64)
    assert np.abs(alone - together).max() > 1 << 20


def test_shifts_work_with_an_ensemble_and_the_stems_still_null(tmp_path, song_file, small_htdemucs):
    song = song_file("s.wav", seconds=2.0, subtype="PCM_16")
    written = {}
    for shifts in ("0", "2"):
        model = f"tiny-4stem+{small_htdemucs}"
        code, _, err = run(
            "separate", song, "-o", tmp_path / shifts, "--model", model, "--shifts", shifts, "--bit-depth", "16"
        )
        assert code == 0, err
        total, mix = summed_against_the_mix(song, tmp_path / shifts / "s")
        assert np.array_equal(total, mix)
        certificate = json.loads((tmp_path / shifts / "s" / "stemdesk-certificate.json").read_text())
        assert certificate["settings"]["shifts"] == int(shifts) and certificate["null"]["bit_exact"]
        written[shifts] = sf.read(str(tmp_path / shifts / "s" / "drums.wav"), dtype="int32")[0]
    assert not np.array_equal(written["0"], written["2"])  # the shifted passes changed the stems


def test_models_with_other_stems_are_refused_saying_which(tmp_path, song_file):
    song = song_file("s.wav", seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem+stemdesk-2stem")
    assert code == 1
    assert "tiny-4stem: vocals, drums, bass, other" in err and "stemdesk-2stem: vocals, accompaniment" in err
    assert not (tmp_path / "out" / "s").exists()
    code, _, err = run(
        "separate", song, "-o", tmp_path / "two", "--model", "stemdesk-2stem+stemdesk-2stem", "--bit-depth", "16"
    )
    assert code == 1 and "appears twice" in err
