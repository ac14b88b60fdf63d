"""The mask-network core: masks sum to one, every estimator nulls, the chunker reconstructs exactly."""

from __future__ import annotations

import pytest
import torch
from helpers import small_configs, small_estimator

from stemdesk.core.cancel import CancelToken
from stemdesk.core.chunker import Chunker, segment_weights
from stemdesk.core.errors import Cancelled, OutOfMemory
from stemdesk.core.estimators import BUILTIN_ESTIMATORS, Estimator
from stemdesk.core.masks import MASK_KINDS, normalise_masks
from stemdesk.core.separator import Separator, group_channels, ungroup_channels
from stemdesk.core.stft import STFT, STFTConfig

SOURCES4 = ["vocals", "drums", "bass", "other"]
SMALL = small_configs()


# Estimators that return masks (a waveform estimator such as HTDemucs returns stems and has no STFT of its own).
MASK_ESTIMATORS = sorted(k for k, cls in BUILTIN_ESTIMATORS.items() if issubclass(cls, Estimator))


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("residual", [False, True])
def test_masks_sum_to_one_everywhere_including_silent_bins(kind, residual):
    raw = torch.randn(2, 3, 2, 33, 7) * 4
    raw[:, :, :, :5] = 0.0  # silent bins: all weights zero
    masks = normalise_masks(raw, kind, residual)
    assert masks.shape == (2, 4 if residual else 3, 2, 33, 7)
    assert torch.allclose(masks.sum(1), torch.ones(2, 2, 33, 7), atol=1e-6)
    assert (masks >= 0).all()
    if kind != "softmax" and not residual:
        # Silent bins are split uniformly, never zeroed.
        assert torch.allclose(masks[:, :, :, :5], torch.full_like(masks[:, :, :, :5], 1 / masks.shape[1]))
    if kind != "softmax" and residual:
        # Nothing predicted: the residual source takes the whole bin.
        assert torch.equal(masks[:, -1, :, :5], torch.ones_like(masks[:, -1, :, :5]))


def test_softmax_masks_of_a_frames_major_output_are_the_softmax_and_keep_its_layout():
    """An output laid out frame by frame (bins fastest, as torch.stft lays a spectrogram) keeps that layout through
    the softmax, so the masking reads mask and spectrogram in step."""
    raw = (torch.randn(1, 7, 3, 2, 33) * 4).permute(0, 2, 3, 4, 1)  # (batch, sources, channels, bins, frames)
    masks = normalise_masks(raw, "softmax")
    assert torch.allclose(masks, torch.softmax(raw.contiguous(), dim=1), atol=1e-7)
    assert masks.stride() == raw.stride()
    assert torch.allclose(masks.sum(1), torch.ones(1, 2, 33, 7), atol=1e-6)


def test_residual_source_gets_what_the_others_leave():
    raw = torch.full((1, 1, 1, 4, 3), 0.25)  # vocals mask 0.25 → accompaniment 0.75
    masks = normalise_masks(raw, "sigmoid", residual=True)
    assert torch.allclose(masks[:, 1], torch.full((1, 1, 4, 3), 0.75))


@pytest.mark.parametrize("kind", sorted(BUILTIN_ESTIMATORS))
@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 2), (22050, 1), (32000, 3), (96000, 6)])
def test_every_estimator_nulls_at_any_rate_and_channel_count(kind, rate, channels):
    separator = Separator(small_estimator(kind))
    audio = torch.randn(channels, rate // 2) * 0.3
    stems = separator(audio, rate).stems
    assert stems.shape == (len(separator.sources), channels, audio.shape[1])
    assert (stems.sum(0) - audio).abs().max() < 1e-6
    assert torch.isfinite(stems).all()


@pytest.mark.parametrize("kind", MASK_ESTIMATORS)
def test_masks_applied_at_native_rate_sum_to_one(kind):
    separator = Separator(small_estimator(kind))
    spec = separator.encode(torch.randn(1, 2, 48000), 48000)
    masks = separator.estimate_masks(spec, 48000)
    assert masks.shape[-2:] == spec.shape[-2:]
    assert torch.allclose(masks.sum(1), torch.ones_like(masks[:, 0]), atol=1e-5)


def test_stft_round_trip_and_rate_scaling():
    config = STFTConfig(n_fft=2048, hop=512)
    stft = STFT(config)
    audio = torch.randn(2, 10001)
    assert torch.allclose(stft.inverse(stft(audio), 10001), audio, atol=1e-5)
    scaled = config.at_rate(48000)
    assert scaled.n_fft == 2229 and scaled.hop == 557
    assert abs(scaled.bin_frequencies()[1] - config.bin_frequencies()[1]) < 0.01


@pytest.mark.parametrize(
    "n_fft, hop, window",
    [(2048, 1024, None), (4096, 1024, None), (4096, 2048, None), (1024, 256, 512), (1024, 300, None)],
)
def test_the_inverse_stft_is_torch_istft(n_fft, hop, window):
    """The inverse's own overlap-add (a hop that divides the FFT) gives torch.istft's samples, for every length
    the frames hold, in float32 and float64; other hops are torch.istft's."""
    stft = STFT(STFTConfig(n_fft=n_fft, hop=hop, win_length=window))
    for length, dtype in [(44100, torch.float32), (44100 - 300, torch.float32), (7001, torch.float64)]:
        audio = torch.randn(3, 2, length, dtype=dtype)
        spec = stft(audio)
        expected = torch.istft(
            spec.reshape(6, *spec.shape[-2:]), n_fft, hop, window, stft.window.to(dtype), center=True, length=length
        )
        assert torch.allclose(stft.inverse(spec, length), expected.reshape(3, 2, length), rtol=0, atol=2e-6)


def test_an_inverse_stft_whose_windows_leave_gaps_is_refused():
    stft = STFT(STFTConfig(n_fft=1024, hop=512, win_length=256))
    with pytest.raises(RuntimeError, match="hop_length <= win_length"):
        stft.inverse(stft(torch.randn(2, 44100)), 44100)


def test_channel_grouping_averages_duplicates_back():
    groups, order = group_channels(3, 2)
    assert groups.tolist() == [[0, 1], [2, 2]]
    stems = torch.arange(2 * 1 * 2 * 5, dtype=torch.float32).reshape(2, 1, 2, 5)
    out = ungroup_channels(stems, order, 3)
    assert out.shape == (1, 3, 5)
    assert torch.equal(out[0, 2], (stems[1, 0, 0] + stems[1, 0, 1]) / 2)


def identity(segment: torch.Tensor) -> torch.Tensor:
    return segment.unsqueeze(0).clone()


@pytest.mark.parametrize(
    "segment, overlap", [(1000, 0), (1000, 1), (1000, 250), (1000, 500), (1000, 900), (4096, 1024), (777, 300)]
)
@pytest.mark.parametrize("length", [1, 500, 999, 1000, 1001, 2500, 10007])
def test_chunker_reconstructs_identity_exactly(segment, overlap, length):
    audio = torch.randn(2, length)
    out = Chunker(identity, segment, overlap).run(audio)
    assert out.shape == (1, 2, length)
    assert torch.allclose(out[0], audio, rtol=5e-7, atol=1e-9)  # a few float32 ulps


@pytest.mark.parametrize("segment, overlap", [(1000, 0), (1000, 250), (1000, 600), (1000, 999), (300, 100)])
@pytest.mark.parametrize("blocks", [1, 7, 333, 100000])
def test_chunker_output_is_the_weighted_mean_of_every_segment(segment, overlap, blocks):
    """Each segment's output differs (it depends on the call), so a sample that took a stale or a missing
    contribution shows: the streamed result equals Σ w·fn(segment) / Σ w computed naively in float64."""
    audio = torch.randn(2, 5123)
    calls = []

    def fn(x):
        calls.append(x.shape[-1])
        return torch.stack([x * len(calls), x.pow(2) + len(calls)])

    out = torch.cat(list(Chunker(fn, segment, overlap).stream(torch.split(audio, blocks, dim=-1))), -1)
    acc = torch.zeros(2, 2, audio.shape[-1], dtype=torch.float64)
    wacc = torch.zeros(audio.shape[-1], dtype=torch.float64)
    stride, start, call = segment - overlap, 0, 0
    while True:
        piece = audio[:, start : start + segment].double()
        n = piece.shape[-1]
        call += 1
        w = segment_weights(n, overlap, torch.float64)
        acc[..., start : start + n] += torch.stack([piece * call, piece.pow(2) + call]) * w
        wacc[start : start + n] += w
        if start + n >= audio.shape[-1]:
            break
        start += stride
    assert calls == [min(segment, audio.shape[-1] - i * stride) for i in range(call)]
    assert torch.allclose(out.double(), acc / wacc, rtol=1e-5, atol=1e-5)


def test_chunker_accumulates_in_the_input_dtype():
    audio = torch.randn(1, 5000, dtype=torch.float64)
    out = Chunker(identity, 1000, 300).run(audio)
    assert out.dtype == torch.float64
    assert torch.allclose(out[0], audio, rtol=0, atol=1e-14)


def test_weights_are_positive_and_ramps_add_to_one():
    w = segment_weights(1000, 200)
    assert (w > 0).all()
    assert torch.allclose(w[-200:] + w[:200], torch.ones(200))


def test_streaming_with_odd_blocks_equals_whole_array():
    torch.manual_seed(1)
    separator = Separator(small_estimator("band_mlp"))
    audio = torch.randn(2, 30000) * 0.2
    chunker = Chunker(lambda x: separator(x, 44100).stems, 8192, 2048)
    whole = chunker.run(audio)
    sizes = [1, 7, 4096, 333, 10000, 30000]
    blocks, position = [], 0
    for size in sizes:
        blocks.append(audio[:, position : position + size])
        position += size
    streamed = list(chunker.stream(blocks, total=30000))
    assert all(b.shape[-1] > 0 for b in streamed)
    assert torch.equal(torch.cat(streamed, -1), whole)
    assert (whole.sum(0) - audio).abs().max() < 1e-6


def test_out_of_memory_halves_the_segment_and_keeps_going():
    calls = []

    def fussy(segment):
        calls.append(segment.shape[-1])
        if segment.shape[-1] > 2500:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return identity(segment)

    audio = torch.randn(2, 20000)
    chunker = Chunker(fussy, 8000, 1000, min_segment=1000)
    out = chunker.run(audio)
    assert torch.allclose(out[0], audio, rtol=5e-7, atol=1e-9)
    assert chunker.device_segment == 2000
    assert max(calls[3:]) <= 2500  # after the first failures, only small pieces are tried


def test_out_of_memory_at_the_smallest_segment_says_what_to_do():
    def broke(segment):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(OutOfMemory, match="separate on the CPU") as raised:
        Chunker(broke, 8000, 1000, min_segment=4000).run(torch.randn(1, 9000))
    assert (raised.value.setting, raised.value.value) == ("device", "cpu")  # each front end names the control


def test_cancel_stops_between_segments():
    token = CancelToken()
    seen = []

    def fn(segment):
        seen.append(1)
        token.cancel()
        return identity(segment)

    with pytest.raises(Cancelled):
        list(Chunker(fn, 1000, 100).stream([torch.randn(1, 10000)], cancel=token))
    assert len(seen) == 1


def test_progress_reports_every_sample():
    events = []
    Chunker(identity, 1000, 100).run(torch.randn(1, 4321), progress=events.append)
    assert events[-1]["done"] == 4321 == events[-1]["total"]
    assert [e["done"] for e in events] == sorted(e["done"] for e in events)


def cascade(**overrides):
    return small_estimator("cascade", **overrides).eval()


def test_cascade_takes_the_lead_source_from_the_first_stage_and_splits_the_rest_by_the_second():
    torch.manual_seed(1)
    est = cascade()
    mag = torch.rand(1, 2, est.bins, 40)
    with torch.no_grad():
        masks = normalise_masks(est(mag), est.mask)
        first = normalise_masks(est.first(mag), est.first.mask, est.first.residual)
        second = normalise_masks(est.second(mag), est.second.mask)
    k = est.first_bins
    assert est.sources == ("vocals", "drums", "bass", "other") and k == 256
    assert torch.allclose(masks[:, 0, :, :k], first[:, 0, :, :k])  # vocals: the U-Net below its bandwidth
    assert torch.allclose(masks[:, 0, :, k:], second[:, 0, :, k:])  # the second stage's vocals above it
    rest = second[:, 1:] / second[:, 1:].sum(1, keepdim=True)
    assert torch.allclose(masks[:, 1:], (1 - masks[:, :1]) * rest, atol=1e-6)
    assert torch.allclose(masks.sum(1), torch.ones(()), atol=1e-6)


@pytest.mark.parametrize("second_mask", ["softmax", "ratio"])
@pytest.mark.parametrize("exponent", [1.0, 0.7, 2.0])
def test_cascade_inference_path_computes_what_the_trainable_path_does(exponent, second_mask):
    torch.manual_seed(2)
    second = {"kind": "open_unmix", "config": {**SMALL["open_unmix"], "mask": second_mask}}
    # float64: the LSTM's kernels with and without autograd differ by float32 rounding (6e-8 here), which the
    # renormalisation of a nearly silent rest can magnify past any fixed tolerance on some CPUs
    est = cascade(rest_exponent=exponent, second=second).double()
    mag = torch.rand(2, 2, est.bins, 40, dtype=torch.float64)
    with torch.no_grad():
        fast = est(mag)  # in place, no autograd
    with torch.enable_grad():
        trainable = est(mag)
        trainable.sum().backward()
    assert trainable.requires_grad and not fast.requires_grad
    assert torch.allclose(fast, trainable, rtol=1e-9, atol=1e-12)
    assert all(torch.isfinite(p.grad).all() for p in est.parameters() if p.grad is not None)


@pytest.mark.parametrize("second_mask", ["softmax", "ratio"])
def test_a_cascade_rest_exponent_softens_the_second_stages_split_and_the_masks_still_sum_to_one(second_mask):
    torch.manual_seed(3)
    second_config = {"kind": "open_unmix", "config": {**SMALL["open_unmix"], "mask": second_mask}}
    plain, soft = cascade(second=second_config), cascade(second=second_config, rest_exponent=0.5)
    soft.load_state_dict(plain.state_dict())
    mag = torch.rand(1, 2, plain.bins, 40)
    with torch.no_grad():
        a, b = plain(mag), soft(mag)
        second = normalise_masks(plain.second(mag), plain.second.mask)
    k = plain.first_bins
    assert torch.equal(a[:, 0, :, :k], b[:, 0, :, :k])  # the U-Net's lead is not touched
    from stemdesk.core.masks import SILENT, ratio_masks

    rest = ratio_masks(second[:, 1:].clamp_min(SILENT).sqrt())  # s^0.5 / Σ s^0.5
    assert torch.allclose(b[:, 1:], (1 - b[:, :1]) * rest, atol=1e-6)
    # softer: the largest share of the rest falls, the smallest rises
    sa, sb = a[:, 1:, :, :k], b[:, 1:, :, :k]
    assert (sb.amax(1) <= sa.amax(1) + 1e-6).all() and (sb.amin(1) >= sa.amin(1) - 1e-6).all()
    assert torch.allclose(b.sum(1), torch.ones(()), atol=1e-6)
    assert soft.config()["rest_exponent"] == 0.5
    with pytest.raises(ValueError, match="rest_exponent"):
        cascade(rest_exponent=0.0)


def test_a_cascade_whose_second_stage_hears_the_rest_gives_it_the_mix_without_the_lead():
    torch.manual_seed(4)
    plain, rest = cascade(), cascade(second_input="rest")
    rest.load_state_dict(plain.state_dict())
    heard = []
    rest.second.register_forward_pre_hook(lambda module, args: heard.append(args[0].clone()))
    mag = torch.rand(2, 2, plain.bins, 40)
    for grad in (False, True):  # the inference and the trainable path
        heard.clear()
        with torch.set_grad_enabled(grad):
            masks = rest(mag)
            lead = normalise_masks(rest.first(mag), rest.first.mask, rest.first.residual)[:, 0]
        k = rest.first_bins
        assert torch.allclose(heard[0][:, :, :k], (1 - lead[:, :, :k]) * mag[:, :, :k])
        assert torch.equal(heard[0][:, :, k:], mag[:, :, k:])  # above the U-Net: the mix as it is
        with torch.no_grad():
            second = normalise_masks(rest.second(heard[0]), rest.second.mask)
        assert torch.allclose(masks[:, 0, :, :k], lead[:, :, :k], atol=1e-6)
        assert torch.allclose(
            masks[:, 1:], (1 - masks[:, :1]) * second[:, 1:] / second[:, 1:].sum(1, keepdim=True), atol=1e-5
        )
        assert torch.allclose(masks.sum(1), torch.ones(()), atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(plain(mag)[:, 1:], rest(mag)[:, 1:])  # it changes what the rest becomes
    assert rest.config()["second_input"] == "rest" and plain.config()["second_input"] == "mix"
    with pytest.raises(ValueError, match="second_input"):
        cascade(second_input="vocals")


def test_cascade_shares_the_rest_equally_where_the_second_stage_leaves_nothing():
    from stemdesk.core.estimators.cascade import Cascade

    lead = torch.rand(1, 2, 3, 5)
    second = torch.rand(1, 4, 2, 6, 5)
    second[:, 1:, :, 1] = 0  # bin 1: no drums, bass or other
    second = second / second.sum(1, keepdim=True)
    masks = Cascade._combine_in_place(lead, second.clone())
    assert torch.allclose(masks[:, 0, :, :3], lead) and torch.equal(masks[:, 0, :, 3:], second[:, 0, :, 3:])
    share = (1 - lead[:, :, 1]) / 3  # the U-Net's lead leaves 1 - lead
    assert torch.all(share > 0) and torch.allclose(masks[:, 1:, :, 1], share.unsqueeze(1).expand(-1, 3, -1, -1))
    assert torch.allclose(masks.sum(1), torch.ones(()), atol=1e-6)


def test_sigmoid_unet_with_a_residual_needs_one_network_for_two_sources():
    est = small_estimator("unet", sources=["vocals", "accompaniment"], mask="sigmoid", residual=True).eval()
    assert len(est.instruments) == 1
    mag = torch.rand(2, 2, est.bins, 70)
    with torch.no_grad():
        masks = normalise_masks(est(mag), est.mask, est.residual)
        sigmoid = est.sigmoid_masks(mag)[:, 0]
    assert torch.allclose(masks[:, 0, :, : est.max_bins], sigmoid)
    assert torch.allclose(masks[:, 1, :, : est.max_bins], 1 - sigmoid)
    assert torch.all(masks[:, :, :, est.max_bins :] == 0.5)  # no estimate there: an equal split


def test_unet_whole_input_patch_matches_the_patch_size_when_the_input_fits_one_patch():
    est = small_estimator("unet", patch=64).eval()
    whole = small_estimator("unet", patch=0).eval()
    whole.load_state_dict(est.state_dict())
    mag = torch.rand(1, 2, est.bins, 64)
    with torch.no_grad():
        assert torch.allclose(est(mag), whole(mag), atol=1e-6)
        assert whole(torch.rand(1, 2, est.bins, 100)).shape[-1] == 100  # padded to 128 inside, cut back


@pytest.mark.parametrize("cin,cout", [(64, 16), (32, 1), (3, 2)])
def test_polyphase_up_layer_equals_the_transposed_convolution_it_replaces(cin, cout):
    from stemdesk.core.estimators.unet import _Crop, _PolyphaseUp

    torch.manual_seed(0)
    fast = _PolyphaseUp(cin, cout)
    plain = torch.nn.ConvTranspose2d(cin, cout, 5, stride=2)
    plain.load_state_dict(fast.state_dict())  # the same parameters under the same names
    x = torch.randn(2, cin, 13, 8)  # odd sizes: the borders' taps matter
    expected = _Crop()(plain(x))
    got = fast(x)
    assert got.shape == expected.shape == (2, cout, 26, 16)
    assert torch.allclose(got, expected, atol=1e-5)
    got.sum().backward()  # it trains: gradients reach the 5×5 kernel
    assert fast.weight.grad is not None and fast.weight.grad.abs().sum() > 0


def test_unet_state_dict_names_are_torchspleeters():
    names = set(small_estimator("unet", sources=["vocals", "accompaniment"], base=16).state_dict())
    for i in range(1, 7):
        assert f"instruments.0.up{i}.0.weight" in names and f"instruments.0.up{i}.3.running_mean" in names
    assert "instruments.0.up7.0.weight" in names and "instruments.0.down6_act.0.running_var" in names


@pytest.mark.parametrize(
    "change",
    [
        {"first": {"kind": "unet", "config": {"sources": ["guitar", "rest"], "base": 2, "max_bins": 256}}},
        {
            "first": {
                "kind": "unet",
                "config": {
                    "sources": ["vocals", "rest"],
                    "base": 2,
                    "max_bins": 256,
                    "stft": {"n_fft": 512, "hop": 128},
                },
            }
        },
        {
            "sources": ["vocals", "bass", "drums", "other"],
            "second": {"kind": "open_unmix", "config": {"sources": SOURCES4, "hidden": 16, "layers": 1}},
        },
    ],
)
def test_cascade_refuses_stages_that_do_not_fit(change):
    with pytest.raises(ValueError):
        cascade(**change)


def test_a_sigmoid_mask_and_its_residual_complement_are_taken_as_they_are():
    raw = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.7]).reshape(1, 1, 1, 5, 1)
    masks = normalise_masks(raw, "sigmoid", residual=True)
    assert torch.equal(masks[:, 0].flatten(), torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]))
    assert torch.equal(masks.sum(1), torch.ones(1, 1, 5, 1))


def test_the_separator_keeps_a_cascades_masks_as_they_come():
    est = cascade()
    spec = torch.randn(1, 2, est.bins, 30, dtype=torch.complex64)
    with torch.no_grad():
        expected = est(spec.abs())
    assert est.sums_to_one and torch.allclose(expected.sum(1), torch.ones(()), atol=1e-6)
    assert torch.equal(Separator(est).estimate_masks(spec, est.stft_config.sample_rate), expected)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_every_estimator_converts_to_half_precision(kind):
    """RomaCNN and LinCNN once stored an int in `self.half`, hiding Module.half() (found by the type checker)."""
    estimator = small_estimator(kind).half()
    assert {p.dtype for p in estimator.parameters()} == {torch.float16}
