"""Ensembles in the core: every member on the same segment, masks or stems averaged with their weights, the stems
still sum to the mix; members with other stems, rates or orders."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import small_estimator

from stemdesk.core.chunker import Chunker
from stemdesk.core.ensemble import Ensemble, Member, common_stems
from stemdesk.core.estimators.htdemucs import HTDemucs
from stemdesk.core.postprocess import Binarise
from stemdesk.core.separator import MAX_SHIFT_SECONDS, Separator

HTDEMUCS = dict(width=8, bottom_channels=16, transformer_layers=2, heads=2, nfft=512, segment=8192)


def small_htdemucs(seed: int = 0, **overrides) -> HTDemucs:
    """A random HTDemucs in its own order (drums, bass, other, vocals), scales raised so it is not almost linear."""
    torch.manual_seed(seed)
    model = HTDemucs(**{**HTDEMUCS, **overrides}).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".scale"):
                parameter.fill_(0.5)
    return model


def band_mlp(seed: int, **overrides):
    estimator = small_estimator("band_mlp", **overrides)  # seeded with 0
    torch.manual_seed(seed)
    with torch.no_grad():  # a different random network per seed
        for parameter in estimator.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return estimator


def audio(seconds: float = 1.0, rate: int = 44100, channels: int = 2, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return (0.2 * torch.randn(channels, int(seconds * rate))).double()


def assert_nulls(stems: torch.Tensor, mix: torch.Tensor) -> None:
    residual = (stems.sum(0) - mix).abs().max().item()
    assert residual == 0 or 20 * math.log10(residual) < -138


def test_mask_models_on_one_stft_average_their_masks_with_their_weights():
    """Masks of models on the same STFT are averaged before they are applied; masking and the iSTFT are linear, so
    that is the weighted mean of the models' own stems, and it is neither model's."""
    a, b = band_mlp(0), band_mlp(1)
    mix = audio()
    ensemble = Ensemble([Member(a, 3.0, name="a"), Member(b, 1.0, name="b")])
    assert ensemble.mask_groups(44100) == [[0, 1]]
    stems = ensemble(mix, 44100).stems
    assert_nulls(stems, mix)
    alone_a, alone_b = Separator(a)(mix, 44100).stems, Separator(b)(mix, 44100).stems
    assert torch.allclose(stems, (3 * alone_a + alone_b) / 4, atol=1e-6)
    assert (stems - alone_a).abs().max() > 1e-3 and (stems - alone_b).abs().max() > 1e-3


def test_a_waveform_model_and_a_mask_model_average_their_stems_in_the_ensembles_order():
    """HTDemucs writes drums, bass, other, vocals; the mask model vocals, drums, bass, other: each stem of the
    ensemble is the weighted mean of the same stem of both."""
    waveform, masks = small_htdemucs(), band_mlp(0)
    mix = audio(seconds=0.15)  # shorter than the small HTDemucs's segment: one run of each
    ensemble = Ensemble([Member(masks, 1.0, name="masks"), Member(waveform, 2.0, name="waveform")])
    assert ensemble.sources == ("vocals", "drums", "bass", "other")
    stems = ensemble(mix, 44100).stems
    assert_nulls(stems, mix)
    alone_masks = Separator(masks)(mix, 44100).stems
    alone_waveform = Separator(waveform)(mix, 44100).stems[[3, 0, 1, 2]]  # into vocals, drums, bass, other
    assert torch.allclose(stems, (alone_masks + 2 * alone_waveform) / 3, atol=1e-6)


@pytest.mark.parametrize("shifts", [0, 2])
def test_an_ensemble_streams_through_the_chunker_and_nulls_with_and_without_shifts(shifts):
    """With a waveform member the chunker's segment is a whole number of its own segments (less the largest shift
    with --shifts), so each block costs it no more runs than it would alone; the stems null, and shifts repeat."""
    waveform, masks = small_htdemucs(), band_mlp(0)
    rate = 44100
    ensemble = Ensemble([Member(masks, name="masks"), Member(waveform, name="waveform")], shifts=shifts)
    plan = ensemble.chunking(rate, 0.6, 0.1)
    own = Separator(waveform).waveform_segments(rate)
    stride, most = own["segment"] - own["overlap"], int(MAX_SHIFT_SECONDS * rate) if shifts else 0
    assert (plan["segment"] + most - own["segment"]) % stride == 0  # the block and a shift fill its segments
    assert abs(plan["segment"] - 0.6 * rate) <= stride / 2 + own["overlap"]  # about the segment asked for
    assert plan["overlap"] == own["overlap"]
    mix = audio(seconds=2.0)
    runs: list[int] = []
    hook = waveform.register_forward_hook(lambda *_: runs.append(1))
    stems = Chunker(lambda x: ensemble(x, rate).stems, **plan).run(mix)
    assert stems.shape == (4, 2, mix.shape[-1])
    assert_nulls(stems, mix)
    in_ensemble, runs[:] = len(runs), []
    alone = Separator(waveform)
    Chunker(lambda x: alone(x, rate).stems, **alone.chunking(rate, 0.6, 0.1)).run(mix)
    hook.remove()
    if not shifts:
        assert in_ensemble <= len(runs) + 1  # as many runs of the waveform model as alone, one more at the end
    else:
        again = Ensemble([Member(masks, name="masks"), Member(waveform, name="waveform")], shifts=shifts)
        assert torch.equal(Chunker(lambda x: again(x, rate).stems, **plan).run(mix), stems)


def test_members_at_other_rates_run_at_the_songs_rate():
    """Mask models trained at 22.05 and 44.1 kHz and a waveform model at 22.05 kHz separate a 48-kHz mono song
    together: each works at the song's rate as it would alone (bins interpolated, audio resampled)."""
    low = band_mlp(1, stft={"n_fft": 512, "hop": 128, "sample_rate": 22050})
    other_grid = band_mlp(2, stft={"n_fft": 2048, "hop": 512})
    members = [Member(band_mlp(0)), Member(low), Member(other_grid), Member(small_htdemucs(sample_rate=22050))]
    ensemble = Ensemble(members)
    rate = 48000
    mix = audio(seconds=1.0, rate=rate, channels=1)
    stems = Chunker(lambda x: ensemble(x, rate).stems, **ensemble.chunking(rate, 0.5, 0.1)).run(mix)
    assert stems.shape == (4, 1, rate)
    assert_nulls(stems, mix)
    # 512/128 at 22.05 kHz is 1024/256 at 44.1 kHz, the same STFT at 48 kHz: those masks are averaged; the
    # 2048/512 model's stems and the waveform model's are averaged with the result
    assert ensemble.mask_groups(rate) == [[0, 1], [2], [3]]


def test_members_must_separate_the_same_stems_and_the_error_says_which():
    assert common_stems([["vocals", "drums"], ["drums", "vocals"]], ["a", "b"]) == ("vocals", "drums")
    with pytest.raises(ValueError) as error:
        common_stems([["vocals", "drums", "bass", "other"], ["vocals", "accompaniment"]], ["four", "two"])
    message = str(error.value)
    assert "four: vocals, drums, bass, other" in message and "two: vocals, accompaniment" in message
    assert "accompaniment, bass, drums, other are not made by every one (shared: vocals)" in message
    two = small_estimator("band_mlp", sources=["vocals", "accompaniment"])
    with pytest.raises(ValueError, match="not made by every one"):
        Ensemble([Member(band_mlp(0), name="four"), Member(two, name="two")])
    merged = Member(band_mlp(0), outputs={"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]})
    assert Ensemble([merged, Member(two)]).sources == ("vocals", "accompaniment")  # a 2-stem view of a 4-stem one


def test_an_ensemble_refuses_what_it_cannot_average():
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([Member(band_mlp(0))])
    with pytest.raises(ValueError, match="more than 0"):
        Ensemble([Member(band_mlp(0), 0.0), Member(band_mlp(1))])
    with pytest.raises(ValueError, match="predicts waveforms"):
        Ensemble([Member(band_mlp(0)), Member(small_htdemucs(), name="htdemucs")], postprocess=[Binarise(10.0)])
    masks = Ensemble([Member(band_mlp(0)), Member(band_mlp(1))], postprocess=[Binarise(10.0)], wiener_iterations=1)
    mix = audio(seconds=0.5)
    assert_nulls(masks(mix, 44100).stems, mix)  # mask steps act on the averaged masks and keep the null
