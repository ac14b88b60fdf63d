"""lab/benchmarks/reproduction.py stores a twin's weights once (pretet-unet-post separates with pretet-unet's
weights): the card points at the twin's file, the store still checks its sha256, and other weights keep their copy."""

from __future__ import annotations

import pytest
import torch
from helpers import script_module, small_estimator

from stemdesk.core.errors import ModelError
from stemdesk.io.model_store import find_model, load_estimator, read_card, save_model


@pytest.fixture(scope="module")
def benchmark():
    from conftest import REPO

    return script_module(REPO / "lab" / "benchmarks" / "reproduction.py", "reproduction_benchmark")


def test_a_twin_borrows_the_weights_it_shares_and_they_are_still_checked(benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path))
    estimator = small_estimator("band_mlp")
    twin = save_model(tmp_path / "repro-twin", "repro-twin", estimator, {"purpose": "research"})
    save_model(tmp_path / "repro-twin-post", "repro-twin-post", estimator, {"purpose": "research"})

    benchmark.borrow_weights(tmp_path / "repro-twin-post", twin)
    post = read_card(tmp_path / "repro-twin-post")
    assert post.raw["weights_from"] == "repro-twin" and not (post.folder / "weights.safetensors").exists()
    loaded, _ = load_estimator("repro-twin-post")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), estimator.state_dict().values()))

    (tmp_path / "repro-twin" / "weights.safetensors").write_bytes(b"damaged")
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_estimator(find_model("repro-twin-post"))


def test_weights_that_differ_from_the_twins_keep_their_own_file(benchmark, tmp_path):
    twin = save_model(tmp_path / "repro-twin", "repro-twin", small_estimator("band_mlp"), {"purpose": "research"})
    other = small_estimator("band_mlp")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_model(tmp_path / "repro-other", "repro-other", other, {"purpose": "research"})
    benchmark.borrow_weights(tmp_path / "repro-other", twin)
    assert "weights_from" not in read_card(tmp_path / "repro-other").raw
    assert (tmp_path / "repro-other" / "weights.safetensors").is_file()
