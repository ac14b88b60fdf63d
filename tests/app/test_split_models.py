"""Split models in the app: they split one stem, so the Model box (what separates a song) and the Trainer's
"Start from" leave them out, and the Models dock lists them with the stem they split."""

from __future__ import annotations

import torch
from PySide6.QtWidgets import QComboBox

from stemdesk.app.docks import fill_model_box
from stemdesk.app.models_panel import ModelsPanel
from stemdesk.app.trainer_panel import TrainerPanel
from stemdesk.core.estimators import build_estimator
from stemdesk.io.model_store import save_model, user_models_dir


def test_split_models_are_listed_as_splits_and_never_offered_to_separate_a_song(qtbot):
    torch.manual_seed(0)
    estimator = build_estimator("band_mlp", {"sources": ["lead", "backing"], "stft": {"n_fft": 1024, "hop": 256}})
    facts = {"description": "test split model", "purpose": "split", "split": {"parent": "vocals"}}
    save_model(user_models_dir() / "tiny-split", "tiny-split", estimator, facts)
    box = QComboBox()
    qtbot.addWidget(box)
    fill_model_box(box, None, "stemdesk-4stem")
    offered = [box.itemText(i) for i in range(box.count())]
    assert "stemdesk-4stem" in offered and "tiny-split" not in offered and "stemdesk-drumkit" not in offered
    panel = ModelsPanel()
    qtbot.addWidget(panel)
    panel.refresh()
    rows = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert "tiny-split  · splits vocals into lead, backing" in rows
    assert "stemdesk-drumkit  · splits drums into kick, snare, cymbals, toms, other" in rows
    trainer = TrainerPanel()
    qtbot.addWidget(trainer)
    trainer.refresh_bases()
    bases = [trainer.base.itemText(i) for i in range(trainer.base.count())]
    assert "stemdesk-4stem" in bases and "tiny-split" not in bases
