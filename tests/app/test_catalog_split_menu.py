"""A catalog model installed to split a stem is offered where the app's split models are: a stem lane's "Split
vocals with ▸" menu, the Models dock under what it splits, and never the Model box of song models."""

from __future__ import annotations

from types import SimpleNamespace

from catalog_models import community_models
from PySide6.QtWidgets import QComboBox, QMenu

from stemdesk.app.docks import fill_model_box
from stemdesk.app.models_panel import ModelsPanel
from stemdesk.app.separation import SeparationFlow


def offered(flow: SeparationFlow, lane: str) -> tuple[str, list[str]]:
    """The lane menu's split submenu: its title and its models."""
    menu = QMenu()
    flow.offer_splits(menu, lane)
    submenu = next(a.menu() for a in menu.actions() if a.menu() is not None)
    return submenu.title(), [a.text().split(" (")[0] for a in submenu.actions()]


def test_installed_catalog_splits_are_offered_on_their_stems_lanes(qtbot, tmp_path, monkeypatch):
    models = community_models(tmp_path, monkeypatch, which=("karaoke", "dereverb", "drumsep"))
    # only the workspace's stems reach the lane menu's offer (the flow's other collaborators are not used by it)
    stems = {name: tmp_path / f"{name}.wav" for name in ("vocals", "drums", "bass", "other")}
    flow = SeparationFlow(*[None] * 2, SimpleNamespace(stems=stems, groups={}), *[None] * 10)  # type: ignore[arg-type]
    title, vocals = offered(flow, "vocals")
    assert title == "Split vocals with" and {models["karaoke"], models["dereverb"]} <= set(vocals)
    assert models["drumsep"] not in vocals
    title, drums = offered(flow, "drums")
    assert title == "Split drums with" and models["drumsep"] in drums and models["karaoke"] not in drums

    box = QComboBox()
    qtbot.addWidget(box)
    fill_model_box(box, None, "stemdesk-4stem")
    songs = [box.itemText(i) for i in range(box.count())]
    assert "stemdesk-4stem" in songs and not set(models.values()) & set(songs)
    panel = ModelsPanel()
    qtbot.addWidget(panel)
    panel.refresh()
    rows = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert f"{models['karaoke']}  · splits vocals into lead, backing" in rows
    assert f"{models['drumsep']}  · splits drums into kick, snare, toms, hh, ride, crash" in rows
