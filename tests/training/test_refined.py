"""A band-split correction on a trained second stage: it starts by computing the base's masks, every part of it
learns, the bands cover the spectrum, a chunk's masks do not depend on what else the chunk holds far away, and the
shipped default is its trained cascade plus a trained correction."""

from __future__ import annotations

import pytest
import torch
from helpers import shipped_default_plain

from stemdesk.core.estimators import build_estimator
from stemdesk.core.estimators.refined import band_groups
from stemdesk.training.widen import refine_cascade_second

BASE = {
    "sources": ["vocals", "drums", "bass", "other"],
    "stft": {"n_fft": 4096, "hop": 1024},
    "channels": 2,
    "hidden": 16,
    "layers": 1,
    "max_freq": 16000.0,
}
SHARED = {k: BASE[k] for k in ("sources", "stft", "channels")}


def refined(**settings) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_estimator("refined", {**SHARED, "base": {"kind": "open_unmix", "config": BASE}, **settings})


def mags(frames: int, seed: int = 1) -> torch.Tensor:
    return 3 * torch.rand(1, 2, 2049, frames, generator=torch.Generator().manual_seed(seed))


def test_the_bands_cover_every_bin_once_and_are_finest_at_the_bottom():
    groups = band_groups([(4, 64), (8, 128), (128, 100_000)], 1487)
    assert groups[0] == (0, 4, 16) and groups[1] == (64, 8, 8)
    start, width, count = groups[-1]
    assert start == 128 and width == 128 and start + width * count >= 1487 > start + width * (count - 1)
    with pytest.raises(ValueError, match="below 1487"):
        band_groups([(4, 64)], 1487)
    with pytest.raises(ValueError, match="at least one bin"):
        band_groups([(0, 64)], 64)


def test_an_untrained_correction_changes_nothing():
    net = refined().eval()
    mag = mags(30)
    with torch.no_grad():
        assert torch.equal(net(mag), net.base(mag))


def test_every_part_of_the_correction_learns_and_changes_the_masks():
    net = refined(dim=8, dilations=[1, 2])
    net.train()
    mag = mags(20)
    target = torch.softmax(torch.randn(1, 4, 2, 2049, 20, generator=torch.Generator().manual_seed(2)), dim=1)
    optimiser = torch.optim.Adam([p for n, p in net.named_parameters() if not n.startswith("base.")], lr=1e-2)
    losses = []
    for _ in range(3):
        optimiser.zero_grad()
        loss = (torch.softmax(net(mag), dim=1) - target).abs().mean()
        loss.backward()
        losses.append(loss.item())
        optimiser.step()
    grads = {n: p.grad for n, p in net.named_parameters() if not n.startswith("base.")}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert losses[-1] < losses[0]
    net.eval()
    with torch.no_grad():
        change = net(mag) - net.base(mag)
    assert change[:, :, :, :1487].abs().amax(dim=(0, 1, 2, 4)).min() > 0  # every bin below max_freq is corrected
    assert change[:, :, :, 1487:].abs().max() == 0  # above it the base's logits stand


def test_a_frames_masks_do_not_depend_on_frames_beyond_the_receptive_field():
    """Separation runs a song in overlapping chunks: a frame must get the same masks whichever chunk it is in, as
    long as the chunk holds its context (no norm over the whole chunk). On a base that sees two frames either side
    (a BiLSTM base sees the whole chunk by design)."""
    torch.manual_seed(0)
    local = {**SHARED, "bands": 8, "hidden": 8}  # band_mlp: context 2
    net = build_estimator(
        "refined", {**SHARED, "base": {"kind": "band_mlp", "config": local}, "dim": 8, "dilations": [1, 2]}
    )
    for head in net.heads:
        torch.nn.init.normal_(head, std=0.1)
    net.eval()
    mag, other = mags(60), mags(60, seed=5)
    changed = torch.cat([mag[..., :30], other[..., 30:]], dim=-1)
    with torch.no_grad():
        a, b = net(mag), net(changed)
        change = a - net.base(mag)
    assert change.abs().max() > 0.01  # the correction is at work
    # receptive field: the base's 2 frames, then 1 + 2 frames of the two blocks' time convolutions
    assert not torch.allclose(a[..., 25:30], b[..., 25:30])
    torch.testing.assert_close(a[..., :24], b[..., :24], rtol=0, atol=1e-5)


def test_a_refined_estimator_refuses_a_base_it_cannot_correct():
    with pytest.raises(ValueError, match="softmax"):
        build_estimator("refined", {**SHARED, "base": {"kind": "open_unmix", "config": {**BASE, "mask": "ratio"}}})
    with pytest.raises(ValueError, match="odd"):
        refined(kernel=4)


def test_the_shipped_default_is_its_trained_cascade_plus_a_correction_that_changes_its_stems():
    """The correction starts at zero on the plain cascade it was put on (the same masks, bit for bit); the shipped
    correction is trained, so the shipped masks are not the plain cascade's; a second correction is refused."""
    shipped, plain, config = shipped_default_plain()
    state, second = refine_cascade_second(plain.state_dict(), config, dim=8)
    assert second["kind"] == "refined" and second["config"]["base"] == config["second"]
    net = build_estimator("cascade", {**config, "second": second})
    net.load_state_dict(state)  # strict: every parameter named, none left over
    net.eval()
    mag = mags(40, seed=3)
    with torch.no_grad():
        assert torch.equal(net(mag), plain(mag))
        moved = (shipped(mag) - plain(mag)).abs()
    assert moved.max() > 0.05, "the shipped correction does not change the masks"
    with pytest.raises(ValueError, match="already has a correction"):
        refine_cascade_second(shipped.state_dict(), {**config, "second": second})


def test_refining_is_refused_without_a_model_to_continue(capsys):
    """Before any song is loaded."""
    from stemdesk.training.default_models import main

    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--refine"])
    assert "give --continue-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", "--refine", "32", "--widen", "256"])
    assert "choose one" in capsys.readouterr().err
