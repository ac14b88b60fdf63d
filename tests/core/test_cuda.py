"""On a CUDA GPU (skipped elsewhere; benchmarks/gpu.sh runs these on a borrowed one): the quality path runs there,
at float32 and at the precision "auto" chooses, its stems null exactly and stay close to the CPU's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import install_small_htdemucs, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def installed(tmp_path, monkeypatch) -> str:
    return install_small_htdemucs(tmp_path / "models", monkeypatch)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.square(reference).sum() / np.square(reference - estimate).sum()))


@pytest.mark.parametrize("model", ["small-htdemucs", "tiny-4stem"])
def test_a_separation_on_the_gpu_nulls_and_matches_the_cpu(installed, tmp_path, model):
    rng = np.random.default_rng(5)
    song = tmp_path / "song.wav"
    sf.write(song, (rng.standard_normal((3 * 22050, 2)) * 0.1).astype(np.float32), 22050, subtype="PCM_24")
    stems = {}
    for device, precision in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "auto")):
        folder = tmp_path / f"{device}-{precision}"
        code, out, err = run("separate", song, "--model", model, "--device", device, "--precision", precision,
                             "-o", folder)  # fmt: skip
        assert code == 0, err
        cert = json.loads((folder / "song" / "stemdesk-certificate.json").read_text())
        assert cert["settings"]["device"].startswith(device) and cert["null"]["bit_exact"]
        stems[(device, precision)] = sf.read(folder / "song" / "vocals.wav")[0]
        if precision == "auto":
            chosen = cert["settings"]["precision"]
            assert chosen == ("bf16" if model == "small-htdemucs" and torch.cuda.is_bf16_supported() else "fp32")
    assert sdr(stems[("cpu", "fp32")], stems[("cuda", "fp32")]) > 60
    assert sdr(stems[("cpu", "fp32")], stems[("cuda", "auto")]) > 30
