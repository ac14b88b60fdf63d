"""Widening a trained BiLSTM mask net (Net2Net): the wider net starts computing what the trained one did, and its
copied units can still learn different things."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import shipped_default_plain

from lab.widen import widen_cascade_second, widen_open_unmix
from stemdesk.core.estimators import build_estimator

CONFIG = {
    "sources": ["drums", "bass", "other"],
    "stft": {"n_fft": 4096, "hop": 1024},
    "channels": 2,
    "hidden": 16,
    "layers": 2,
    "max_freq": 16000.0,
}


def trained_like(config: dict, seed: int = 0) -> torch.nn.Module:
    """An open_unmix whose every weight and batch-norm statistic is far from its initial value, as after training."""
    generator = torch.Generator().manual_seed(seed)
    net = build_estimator("open_unmix", config)
    state = {}
    for name, value in net.state_dict().items():
        if not value.is_floating_point():
            state[name] = value
        elif "running_var" in name:
            state[name] = 0.5 + torch.rand(value.shape, generator=generator)
        else:
            state[name] = 0.3 * torch.randn(value.shape, generator=generator)
    net.load_state_dict(state)
    return net.eval()


def test_a_widened_net_computes_the_same_masks():
    narrow = trained_like(CONFIG)
    wide = build_estimator("open_unmix", {**CONFIG, "hidden": 48}).eval()
    wide.load_state_dict(widen_open_unmix(narrow.state_dict(), 16, 2, 48))
    mag = 3 * torch.rand(2, 2, 2049, 30, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, after = narrow(mag), wide(mag)
    assert before.abs().max() > 0.5  # the masks' logits are not trivially zero
    assert torch.allclose(after, before, atol=1e-5)


def test_the_copies_of_a_unit_learn_apart():
    """Copies whose outgoing weights were split equally would get equal gradients and stay copies for ever."""
    wide = build_estimator("open_unmix", {**CONFIG, "hidden": 32})
    wide.load_state_dict(widen_open_unmix(trained_like(CONFIG).state_dict(), 16, 2, 32))
    wide.train()
    mag = 3 * torch.rand(2, 2, 2049, 30, generator=torch.Generator().manual_seed(2))
    wide(mag).square().mean().backward()
    grad = wide.fc1.weight.grad
    assert grad is not None
    first, copy = grad[:16], grad[16:]  # unit i and its copy i + 16
    assert (first - copy).norm() > 0.01 * first.norm()


def test_only_a_larger_multiple_of_the_width_is_accepted():
    state = trained_like(CONFIG).state_dict()
    for width in (16, 24, 8):
        with pytest.raises(ValueError, match="larger multiple of 16"):
            widen_open_unmix(state, 16, 2, width)


def test_the_shipped_cascades_second_stage_widens_without_changing_its_stems():
    """The trained BiLSTM stage of the shipped default (the base its band-split correction sits on)."""
    _, plain, config = shipped_default_plain()
    state, second = widen_cascade_second(plain.state_dict(), config, 256)
    assert second["config"]["hidden"] == 256 and second["config"]["layers"] == config["second"]["config"]["layers"]
    wide = build_estimator("cascade", {**config, "second": second})
    wide.load_state_dict(state)
    assert all(torch.equal(state[k], v) for k, v in plain.state_dict().items() if k.startswith("first."))
    wide.eval()
    mag = 3 * torch.rand(1, 2, 2049, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(wide(mag), plain(mag), atol=1e-5)


def test_widening_is_refused_without_a_model_to_continue_or_to_a_width_it_cannot_reach(capsys, tmp_path):
    """Before any song is loaded. A plain second stage of 128 units (the shipped default's without its correction)
    widens only to a larger multiple of 128."""
    import shutil

    from lab.default_models import ROOT, main

    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--widen", "256"])
    assert "give --continue-from" in capsys.readouterr().err
    _, _, plain = shipped_default_plain()
    folder = tmp_path / "stemdesk-4stem"
    shutil.copytree(ROOT / "models" / "stemdesk-4stem", folder)
    card = json.loads((folder / "card.json").read_text())
    card["training"]["config"]["config"] = plain
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", str(tmp_path), "--widen", "200"])
    assert "larger multiple of 128" in capsys.readouterr().err


def test_a_second_stage_with_a_correction_is_not_widened(capsys):
    """The shipped default's second stage is a band-split correction on a BiLSTM stage, which --widen does not know
    how to widen; it says so before any song is loaded."""
    from lab.default_models import main

    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--continue-from", "--widen", "256"])
    assert "only a plain BiLSTM stage (open_unmix) is widened" in capsys.readouterr().err
