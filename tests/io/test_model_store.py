"""Model files: float16 storage (the shipped big models) keeps buffers float32 and loads back as float32."""

from __future__ import annotations

import torch
from helpers import small_configs

from stemdesk.core.estimators import build_estimator
from stemdesk.io.model_store import load_estimator, save_model


def test_big_models_store_half_precision_parameters_and_load_as_float32(tmp_path, monkeypatch):
    config = {
        "sources": ["vocals", "drums", "bass", "other"],
        "stft": {"n_fft": 1024, "hop": 256},
        **small_configs()["cascade"],
    }
    torch.manual_seed(0)
    est = build_estimator("cascade", config)
    with torch.no_grad():
        for name, buffer in est.named_buffers():
            if "running_var" in name:
                buffer.uniform_(1e-6, 2e-6)  # below float16's normal range: buffers must stay float32
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))

    full = save_model(tmp_path / "full", "full", est, {})
    half = save_model(tmp_path / "half", "half", est, {}, half=True)
    assert (full.raw["weights_storage"], half.raw["weights_storage"]) == ("float32", "float16")
    size = lambda card: (card.folder / "weights.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.6 * size(full)

    loaded, _ = load_estimator("half")
    expected = est.state_dict()
    parameters = dict(est.named_parameters())
    for name, value in loaded.state_dict().items():
        assert value.dtype == expected[name].dtype, name
        if name in parameters:
            assert torch.equal(value, expected[name].half().float()), name
        else:
            assert torch.equal(value, expected[name]), name


def test_parameters_beyond_float16_range_are_kept_float32(tmp_path):
    est = build_estimator(
        "open_unmix",
        {"sources": ["vocals", "accompaniment"], "stft": {"n_fft": 512, "hop": 128}, "hidden": 8, "layers": 1},
    )
    with torch.no_grad():
        est.input_scale[0] = 1e6
    card = save_model(tmp_path / "m", "m", est, {}, half=True)
    assert card.raw["weights_storage"] == "float32"
