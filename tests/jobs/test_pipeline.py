"""Σ stems == mix through the whole pipeline (decoder → chunker → separator → writer → file) for every registered
estimator, chunk size, overlap and output format."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import small_configs

from stemdesk.core.estimators import BUILTIN_ESTIMATORS, Estimator, build_estimator
from stemdesk.export.nullcheck import null_residual
from stemdesk.io.formats import OutputFormat
from stemdesk.io.model_store import save_model
from stemdesk.jobs.separate import SeparateOptions, SeparationEngine, separate_options

SMALL = small_configs()
FORMATS = [("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"), ("flac", "24"), ("aiff", "24")]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """One randomly initialised model per registered estimator, installed in a temporary model folder."""
    root = tmp_path_factory.mktemp("models")
    found = {}
    for kind in sorted(BUILTIN_ESTIMATORS):
        torch.manual_seed(0)
        sources = ["vocals", "accompaniment"] if kind == "band_mlp" else ["vocals", "drums", "bass", "other"]
        stft = {"stft": {"n_fft": 1024, "hop": 256}} if issubclass(BUILTIN_ESTIMATORS[kind], Estimator) else {}
        config = {"sources": sources, **stft, **SMALL.get(kind, {})}
        est = build_estimator(kind, config)
        found[kind] = save_model(root / f"test-{kind}", f"test-{kind}", est, {"description": "random weights"})
    return found


@pytest.mark.parametrize("kind", sorted(BUILTIN_ESTIMATORS))
@pytest.mark.parametrize("segment, overlap", [(0.3, 0.0), (0.5, 0.1), (1.0, 0.25), (60.0, 2.0)])
@pytest.mark.parametrize("fmt, depth", FORMATS)
def test_pipeline_nulls(tmp_path, song_file, engines, kind, segment, overlap, fmt, depth):
    song = song_file("mix.wav", seconds=2.3, rate=44100, subtype="PCM_24")
    engine = SeparationEngine(engines[kind], "cpu")
    options = SeparateOptions(format=OutputFormat.parse(fmt, depth), segment_seconds=segment, overlap_seconds=overlap)
    result = engine.separate_file(song, tmp_path / "out", options)
    assert [p.name for p in result.outputs] == [f"{s}.{fmt}" for s in engine.sources]
    null = null_residual(song, result.outputs)
    assert null.passed
    if depth == "32f":
        assert null.peak_dbfs is None or null.peak_dbfs <= -138
    else:
        assert null.bit_exact
    assert sf.info(str(result.outputs[0])).frames == sf.info(str(song)).frames


def test_two_stem_models_write_vocals_and_accompaniment(tmp_path, song_file, engines):
    engine = SeparationEngine(engines["band_mlp"], "cpu")
    result = engine.separate_file(song_file(), tmp_path, SeparateOptions())
    assert sorted(p.name for p in result.outputs) == ["accompaniment.wav", "vocals.wav"]
    vocals, accompaniment = (sf.read(str(p))[0] for p in result.outputs)
    assert np.abs(vocals).max() > 0 and np.abs(accompaniment).max() > 0


def test_a_variant_merges_sources_with_shared_weights(tmp_path, song_file, engines, monkeypatch):
    from stemdesk.io.model_store import find_model, save_variant

    base = engines["open_unmix"]
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(base.folder.parent))
    variant = save_variant(
        base.folder.parent / "test-karaoke",
        "test-karaoke",
        base,
        {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
        {"description": "2-stem view of the 4-stem test model"},
    )
    assert find_model("test-karaoke").weights_path == base.weights_path
    song = song_file("mix.wav", seconds=2.0, subtype="PCM_24")
    options = SeparateOptions(format=OutputFormat.parse("wav", "32f"))
    two = SeparationEngine(variant, "cpu").separate_file(song, tmp_path / "two", options)
    four = SeparationEngine(base, "cpu").separate_file(song, tmp_path / "four", options)
    assert [p.name for p in two.outputs] == ["vocals.wav", "accompaniment.wav"]
    stems4 = [sf.read(str(p))[0] for p in four.outputs]
    stems2 = [sf.read(str(p))[0] for p in two.outputs]
    assert np.allclose(stems2[0], stems4[0], atol=1e-6)
    assert np.allclose(stems2[1], stems4[1] + stems4[2] + stems4[3], atol=1e-5)
    assert null_residual(song, two.outputs).passed


def test_separate_options_from_plain_values_and_the_setting_each_error_names():
    """One function builds every front end's options (the command line, the Python API, a batch, the app)."""
    from stemdesk.core.errors import StemDeskError

    assert separate_options() == SeparateOptions()
    options = separate_options("tiny-4stem", "flac", 16, "cpu", start=1, duration=2, segment=5, wiener=1, shifts=2)
    assert options.format == OutputFormat.parse("flac", "16") and options.segment_seconds == 5.0
    assert (options.model, options.device, options.start, options.duration) == ("tiny-4stem", "cpu", 1.0, 2.0)
    assert (options.wiener, options.shifts, options.certify, options.model_postprocessing) == (1, 2, True, True)
    for wrong, setting in [({"segment": 0}, "segment_seconds"), ({"wiener": -1}, "wiener"), ({"shifts": -1}, "shifts")]:
        with pytest.raises(StemDeskError) as raised:
            separate_options(**wrong)
        assert raised.value.setting == setting
    with pytest.raises(StemDeskError):
        separate_options(format="mp3", bit_depth="24")
