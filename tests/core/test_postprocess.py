"""Post-processing and oracles keep Σ stems = mix, and each does what it says."""

from __future__ import annotations

import pytest
import torch

from stemdesk.core.estimators import build_estimator
from stemdesk.core.masks import ratio_masks
from stemdesk.core.postprocess import Binarise, EnergyGate, long_runs, oracle_masks, wiener
from stemdesk.core.separator import Separator
from stemdesk.core.stft import STFT, STFTConfig

SOURCES = ["vocals", "drums", "bass", "other"]


def estimator():
    torch.manual_seed(0)
    return build_estimator(
        "band_mlp", {"sources": SOURCES, "stft": {"n_fft": 1024, "hop": 256}, "bands": 8, "hidden": 8}
    )


@pytest.mark.parametrize(
    "steps, iterations",
    [((EnergyGate(),), 0), ((Binarise(),), 0), ((), 1), ((), 2), ((EnergyGate(ratio=0.3), Binarise(alpha=20)), 1)],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_post_processing_keeps_the_null(steps, iterations, channels):
    audio = torch.randn(channels, 30000) * 0.3
    separator = Separator(estimator(), postprocess=steps, wiener_iterations=iterations)
    stems = separator(audio, 44100).stems
    assert (stems.sum(0) - audio).abs().max() < 1e-5


def test_binarise_moves_masks_towards_zero_and_one():
    masks = ratio_masks(torch.rand(1, 4, 2, 50, 20))
    sharp = Binarise(alpha=30)(None, masks, 0.01)
    assert torch.allclose(sharp.sum(1), torch.ones(1, 2, 50, 20), atol=1e-6)
    distance = lambda m: torch.minimum(m, 1 - m).mean()  # noqa: E731
    assert distance(sharp) < distance(masks)


def test_energy_gate_silences_only_long_quiet_vocal_runs():
    assert long_runs(torch.tensor([[True, True, False, True, True, True, False]]), 3).tolist() == [
        [False, False, False, True, True, True, False]
    ]
    spec = torch.ones(1, 1, 4, 10, dtype=torch.complex64)
    masks = torch.full((1, 2, 1, 4, 10), 0.5)
    masks[:, 0, :, :, 2:8] = 0.01  # vocals quiet in frames 2..7
    masks[:, 1] = 1 - masks[:, 0]
    gated = EnergyGate(min_seconds=0.05, ratio=0.05)(spec, masks, hop_seconds=0.01)
    assert (gated[:, 0, :, :, 2:8] == 0).all() and (gated[:, 1, :, :, 2:8] == 1).all()
    assert torch.equal(gated[..., :2], masks[..., :2])
    short = EnergyGate(min_seconds=0.1, ratio=0.05)(spec, masks, hop_seconds=0.01)
    assert torch.equal(short, masks)  # six quiet frames are shorter than 0.1 s


def test_wiener_sums_to_the_mixture_and_sharpens_a_clear_split():
    stft = STFT(STFTConfig(n_fft=512, hop=128))
    t = torch.arange(16000) / 16000
    a = torch.stack([torch.sin(2 * torch.pi * 440 * t), 0.5 * torch.sin(2 * torch.pi * 440 * t)])  # panned left
    b = torch.stack([0.3 * torch.sin(2 * torch.pi * 3000 * t), torch.sin(2 * torch.pi * 3000 * t)])  # right
    refs = stft(torch.stack([a, b]).unsqueeze(0))  # (1, 2, 2, bins, frames)
    mix = refs.sum(1)
    blurred = 0.7 * oracle_masks(refs, "ibm") + 0.15  # a rough estimate of the right split
    out = wiener(mix, blurred, iterations=2)
    assert torch.allclose(out.sum(1), mix, atol=1e-4)
    before = (blurred * mix.unsqueeze(1) - refs).abs().pow(2).sum()
    after = (out - refs).abs().pow(2).sum()
    assert after < 0.5 * before


def test_oracles():
    refs = torch.randn(1, 3, 2, 5, 4, dtype=torch.complex64)
    for kind in ("irm", "ibm", "mix"):
        masks = oracle_masks(refs, kind)
        assert torch.allclose(masks.sum(1), torch.ones(1, 2, 5, 4), atol=1e-6)
    ibm = oracle_masks(refs, "ibm")
    assert torch.equal(ibm.argmax(1), refs.abs().argmax(1)) and set(ibm.unique().tolist()) == {0.0, 1.0}
