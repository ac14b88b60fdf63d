"""Model files: float16 storage (the shipped big models) keeps buffers float32 and loads back as float32."""

from __future__ import annotations

import pytest
import torch
from helpers import small_configs

from stemdesk.core.estimators import build_estimator
from stemdesk.io.model_store import INT8_SCALE, int8_threshold, load_estimator, save_model


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


def test_the_largest_parameters_can_be_stored_as_int8_and_load_back_within_half_a_step(tmp_path, monkeypatch):
    """The shipped cascade's size problem in small: float16 everywhere, int8 for the matrices that make most of
    the file, each value back within half of its row's step, and the model still separating as before."""
    est = build_estimator(
        "open_unmix",
        {"sources": ["vocals", "accompaniment"], "stft": {"n_fft": 512, "hop": 128}, "hidden": 32, "layers": 2},
    )
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))
    half = save_model(tmp_path / "half", "half", est, {}, half=True)
    sizes = sorted({p.numel() for p in est.parameters() if p.dim() >= 2}, reverse=True)
    size = lambda card: (card.folder / "weights.safetensors").stat().st_size  # noqa: E731
    limit = size(half) - sizes[0] - 1  # more than the largest matrix alone saves (a byte per value, less scales)
    threshold = int8_threshold(est, limit)
    assert threshold == sizes[1]  # so the two largest
    assert int8_threshold(est, 10**9) is None
    with pytest.raises(ValueError, match="cannot fit"):
        int8_threshold(est, 1000)

    small = save_model(tmp_path / "int8", "int8", est, {}, half=True, int8_from=threshold)
    assert small.raw["weights_storage"] == "float16+int8"
    assert size(small) < limit < size(half)
    loaded, _ = load_estimator("int8")
    expected = dict(est.named_parameters())
    for name, value in loaded.named_parameters():
        original = expected[name].detach()
        if original.numel() >= threshold and original.dim() >= 2:
            step = original.reshape(len(original), -1).abs().amax(1) / 127
            error = (value - original).reshape(len(original), -1).abs().amax(1)
            assert torch.all(error <= step / 2 + 1e-7), name
            assert not torch.equal(value, original.half().float()), name
        else:
            assert torch.equal(value, original.half().float()), name
    mag = torch.rand(1, 2, 257, 40)
    with torch.no_grad():
        assert torch.allclose(loaded(mag), est.eval()(mag), atol=0.02)
    # the file holds int8 values and their scales, nothing else of those tensors
    from safetensors.torch import load_file

    stored = load_file(str(small.folder / "weights.safetensors"))
    int8 = {k for k, v in stored.items() if v.dtype == torch.int8}
    assert len(int8) == 2 and all(k + INT8_SCALE in stored for k in int8)


@pytest.mark.parametrize("form", ["xz", "gz"])
def test_compressed_weights_load_as_the_same_weights_and_damage_is_named(tmp_path, monkeypatch, form):
    """A model folder's weights stored compressed (how the shipped models keep the repository small) load as the
    very tensors the plain file held, under the same card sha256; a damaged compressed file is refused saying so."""
    import gzip
    import lzma
    import shutil

    from stemdesk.core.errors import ModelError
    from stemdesk.io.model_store import WEIGHTS, compress_weights, find_model, read_card, weights_file

    folder = tmp_path / "copy"
    shutil.copytree(find_model("tiny-4stem").folder, folder)
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))
    plain = (folder / WEIGHTS).read_bytes()
    expected, _ = load_estimator(read_card(folder))

    written = compress_weights(folder, form)
    assert written.name == f"{WEIGHTS}.{form}" and weights_file(folder) == written
    assert not (folder / WEIGHTS).exists() and written.stat().st_size < len(plain)
    loaded, _ = load_estimator(read_card(folder))
    for name, value in expected.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name

    cut = written.read_bytes()[: written.stat().st_size // 2]
    written.write_bytes(cut)
    with pytest.raises(ModelError, match="does not decompress.*Reinstall"):
        load_estimator(read_card(folder))
    other = bytearray(plain)
    other[-1] ^= 0xFF  # a valid compressed file of other bytes: the card's sha256 catches it
    written.write_bytes(lzma.compress(bytes(other)) if form == "xz" else gzip.compress(bytes(other)))
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_estimator(read_card(folder))


def test_saving_a_model_again_drops_its_old_compressed_weights(tmp_path, monkeypatch):
    import shutil

    from stemdesk.io.model_store import WEIGHTS, compress_weights, find_model, read_card, weights_file

    folder = tmp_path / "copy"
    shutil.copytree(find_model("tiny-4stem").folder, folder)
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))
    compress_weights(folder, "xz")
    estimator, _ = load_estimator(read_card(folder))
    with torch.no_grad():
        next(estimator.parameters()).add_(1.0)
    card = save_model(folder, "copy", estimator, {})
    assert weights_file(folder) == folder / WEIGHTS and not (folder / f"{WEIGHTS}.xz").exists()
    reloaded, _ = load_estimator(card)
    assert torch.equal(next(reloaded.parameters()), next(estimator.parameters()))
