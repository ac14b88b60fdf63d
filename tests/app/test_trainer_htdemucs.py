"""The Trainer dock offers every installed model as a base, HTDemucs too, and one installed while the dock exists
once the dock is shown again (issue 56: HTDemucs can be fine-tuned)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

import torch  # noqa: E402

from stemdesk.app.trainer_panel import TrainerPanel  # noqa: E402
from stemdesk.core.estimators.htdemucs import HTDemucs  # noqa: E402
from stemdesk.io.model_store import DEFAULT_MODEL, save_model  # noqa: E402


def test_an_htdemucs_installed_after_the_dock_was_made_is_offered_as_a_base_when_it_is_shown(
    qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(tmp_path / "models"))
    panel = TrainerPanel()
    qtbot.addWidget(panel)
    bases = [panel.base.itemText(i) for i in range(panel.base.count())]
    assert "small-htdemucs" not in bases and panel.base.currentText() == DEFAULT_MODEL
    torch.manual_seed(0)
    small = HTDemucs(sample_rate=22050, width=8, bottom_channels=16, transformer_layers=2, heads=2, nfft=512,
                     segment=8192)  # fmt: skip
    save_model(tmp_path / "models" / "small-htdemucs", "small-htdemucs", small, {"description": "random"})
    panel.show()
    qtbot.waitExposed(panel)
    bases = [panel.base.itemText(i) for i in range(panel.base.count())]
    assert "small-htdemucs" in bases and panel.base.currentText() == DEFAULT_MODEL  # the choice is kept
    panel.base.setCurrentText("small-htdemucs")
    with qtbot.waitSignal(panel.train_requested) as request:
        panel.start.click()
    assert request.args[0]["base"] == "small-htdemucs"
