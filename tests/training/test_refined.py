"""A band-split correction on a trained second stage: it starts by computing the base's masks, every part of it
learns, the bands cover the spectrum, and a chunk's masks do not depend on what else the chunk holds far away.
(How the lab put it on the shipped default and cut it: lab/tests/test_refined_cascade.py.)"""

from __future__ import annotations

import pytest
import torch
from helpers import REFINED_BASE, REFINED_SHARED, mags, refined

from stemdesk.core.estimators import build_estimator
from stemdesk.core.estimators.refined import band_groups


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
    local = {**REFINED_SHARED, "bands": 8, "hidden": 8}  # band_mlp: context 2
    net = build_estimator(
        "refined", {**REFINED_SHARED, "base": {"kind": "band_mlp", "config": local}, "dim": 8, "dilations": [1, 2]}
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
        build_estimator(
            "refined", {**REFINED_SHARED, "base": {"kind": "open_unmix", "config": {**REFINED_BASE, "mask": "ratio"}}}
        )
    with pytest.raises(ValueError, match="odd"):
        refined(kernel=4)
