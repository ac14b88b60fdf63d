"""The Models dock: the installed models and ensembles with their cards, install, import and remove."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QMenu,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import StemDeskError
from ..io.ensemble import EnsembleCard, find_ensemble, is_ensemble
from ..io.installable import INSTALLABLE
from ..io.model_store import ModelCard, is_research, list_models
from ..io.registry import Registry


class ModelsPanel(QWidget):
    install_requested = Signal(str)
    import_requested = Signal()
    remove_requested = Signal(str)
    use_requested = Signal(str)

    def __init__(self, parent=None, registry: Registry | None = None):
        super().__init__(parent)
        self.registry = registry  # its model folders are listed too
        self.list = QListWidget()
        self.card = QTextBrowser()  # the card as a short readable page, not its JSON
        self.card.setOpenExternalLinks(False)
        buttons = QHBoxLayout()
        self.use = QPushButton("Use")
        # one menu entry per model a registry offers (spleeter-2stem, htdemucs), greyed out once installed
        self.install = QToolButton()
        self.install.setText("Install…")
        self.install.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.install.setMenu(QMenu(self.install))
        self.install_actions = {}
        for model_id, item in INSTALLABLE.items():
            action = self.install.menu().addAction(f"{item.title}  ({item.licence})")
            action.setToolTip(f"{item.summary}. Downloads {item.download}.")
            action.triggered.connect(lambda _=False, m=model_id: self.install_requested.emit(m))
            self.install_actions[model_id] = action
        self.import_button = QPushButton("Import checkpoint…")
        self.import_button.setToolTip(
            "Your own model file: Demucs .th, Open-Unmix .pth (one per target), BS/Mel-RoFormer or MDX23C .ckpt "
            "with its YAML. No code in it is run."
        )
        self.remove = QPushButton("Remove")
        for button in (self.use, self.install, self.import_button, self.remove):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list, 1)
        # the models a user separates with first; the papers' methods trained here only when asked for
        self.show_research = QCheckBox("Show research models")
        self.show_research.setToolTip(
            "Paper methods trained from scratch with a recipe (stemdesk train --recipe): for comparison, not for work"
        )
        self.show_research.toggled.connect(lambda _: self.refresh())
        layout.addWidget(self.show_research)
        layout.addWidget(self.card, 2)
        layout.addLayout(buttons)
        self.list.currentTextChanged.connect(self._show)
        self.use.clicked.connect(lambda: self._ask(self.use_requested))
        self.import_button.clicked.connect(self.import_requested.emit)
        self.remove.clicked.connect(lambda: self._ask(self.remove_requested))
        self.cards: dict[str, ModelCard] = {}
        self.hidden: set[str] = set()
        self.refresh()

    def select(self, model_id: str) -> None:
        """Select ``model_id`` in the list; a research model asked for (from the toolbar) shows the research ones."""
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == model_id:
                self.list.setCurrentRow(row)
                return
        if not self.show_research.isChecked() and model_id in self.hidden:
            self.show_research.setChecked(True)  # refreshes the list
            self.select(model_id)

    def show_model(self, model: str) -> None:
        """The toolbar's model: an installed model is selected in the list; an ensemble (A+B) gets a card naming
        its members, or what is wrong with it."""
        if not is_ensemble(model):
            self.select(model.strip())
            return
        try:
            card = find_ensemble(model, self.registry)
        except StemDeskError as error:
            self.card.setHtml(f"<h3>{escape(model)}</h3><p>{escape(str(error))}</p>")
            return
        self.card.setHtml(ensemble_html(card))

    def _current(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def _ask(self, request) -> None:
        """Use or Remove pressed: ``request`` is emitted with the chosen model, if one is."""
        if self.list.currentItem() is not None:
            request.emit(self._current())

    def refresh(self) -> None:
        current = self.list.currentItem().data(Qt.ItemDataRole.UserRole) if self.list.currentItem() else None
        self.list.clear()
        every = list_models(registry=self.registry)
        research = self.show_research.isChecked()
        self.cards = {card.id: card for card in every if research or not is_research(card)}
        self.hidden = {card.id for card in every} - set(self.cards)
        self.show_research.setText(
            f"Show research models ({len(self.hidden)})" if self.hidden else "Show research models"
        )
        from PySide6.QtWidgets import QListWidgetItem

        for model_id, card in self.cards.items():
            mark = "  · research" if is_research(card) else ""
            stems = f"({', '.join(card.outputs or card.sources)})"
            if card.split_parent not in (None, "mix"):  # what it splits first: a narrow dock cuts the rest
                stems = f"· splits {card.split_parent} into {', '.join(card.sources)}"
            item = QListWidgetItem(f"{model_id}  {stems}{mark}")
            item.setData(Qt.ItemDataRole.UserRole, model_id)
            self.list.addItem(item)
            if model_id == current:
                self.list.setCurrentItem(item)
        for model_id, action in self.install_actions.items():
            action.setEnabled(model_id not in self.cards)
        self.install.setEnabled(any(a.isEnabled() for a in self.install_actions.values()))
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)

    def _show(self, _text: str) -> None:
        if self.list.currentItem() is None:
            self.card.clear()
            return
        self.card.setHtml(card_html(self.cards[self._current()]))


def card_html(card) -> str:
    """A model card as a reader wants it: what it separates, how well, how fast, how big, under which licence."""
    table = "".join(
        f"<tr><td style='padding-right:8px;vertical-align:top'><b>{k}</b></td><td>{v}</td></tr>"
        for k, v in _card_rows(card)
    )
    return (
        f"<h3>{escape(card.id)}</h3><p><b>{escape(card.summary)}</b></p>"
        f"<p>{escape(str(card.raw.get('description', '')))}</p><table>{table}</table>"
    )


def ensemble_html(card: EnsembleCard) -> str:
    """An ensemble's card: what it does, the stems it writes, and each member's card with its weight."""
    total, what = sum(card.weights), card.describe()
    parts = [
        f"<h3>{escape(card.id)}</h3>",
        f"<p>{escape(what[:1].upper() + what[1:])}: every segment goes through each model; their masks (models on "
        "the same STFT) or stems are averaged, and the stems are made to null as for one model. It takes about as "
        "long as its members together.</p>",
        f"<p><b>Separates</b> {escape(', '.join(card.sources))}</p>",
    ]
    for member, weight in zip(card.members, card.weights):
        rows = [("Weight", f"{weight:g} ({weight / total:.0%} of the mean)"), *_card_rows(member)]
        table = "".join(
            f"<tr><td style='padding-right:8px;vertical-align:top'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows
        )
        parts.append(f"<h4>{escape(member.id)}</h4><table>{table}</table>")
    return "".join(parts)


def _card_rows(card) -> list[tuple[str, str]]:
    raw = card.raw
    rows = [("Separates", ", ".join(card.outputs or card.sources))]
    paper = raw.get("paper")
    if isinstance(paper, dict):
        rows.append(
            (
                "Method",
                f"{escape(str(paper.get('reference', '')))}: {escape(str(paper.get('variant', '')))} "
                f"(research model, recipe {escape(str(paper.get('recipe', '')))})",
            )
        )
        settings = paper.get("settings") or {}
        if settings.get("separation"):
            rows.append(("Separation", escape(str(settings["separation"]))))
    metrics = raw.get("metrics", {}).get("validation_usdr_median_db", {})
    if metrics:
        songs = len(raw.get("metrics", {}).get("validation_usdr_per_song_db", {}))
        quality = ", ".join(f"{k} {v:.1f} dB" for k, v in metrics.items())
        rows.append(("Quality", f"{quality} (median uSDR on {songs or 'its'} validation songs)"))
    reproduction = raw.get("reproduction") or {}
    if reproduction.get("vocals_vs_nothing_db") is not None:
        rows.append(
            (
                "Vs doing nothing",
                f"vocals {reproduction['vocals_vs_nothing_db']:+.2f} dB over a quarter of the mixture as the vocal "
                "estimate",
            )
        )
    if reproduction.get("note"):
        rows.append(("Measured", escape(reproduction["note"])))
    speed = raw.get("speed")
    if isinstance(speed, dict) and "seconds_1_thread" in speed:
        rows.append(
            (
                "Speed",
                f"{speed['song_seconds']} s of audio in {speed['seconds_1_thread']} s on one CPU thread, "
                f"peak memory {speed.get('peak_memory_mb_1_thread', '?')} MB ({speed.get('machine', '')})",
            )
        )
    weights = card.weights_path
    size = f"{weights.stat().st_size / 1e6:.0f} MB" if weights.is_file() else "?"
    rows.append(("Size", f"{raw.get('parameters', 0):,} parameters, {size} of weights"))
    licences = raw.get("licenses", {})
    if licences:
        rows.append(("Licence", "<br>".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in licences.items())))
    if raw.get("license_note"):
        rows.append(("Note", escape(raw["license_note"])))
    rows.append(("Folder", escape(str(card.folder))))
    return rows


def checkpoint_files_dialog(parent) -> list[Path]:
    """The checkpoint to import (with its YAML config, or Open-Unmix's per-target files, chosen together)."""
    files, _ = QFileDialog.getOpenFileNames(
        parent,
        "Import checkpoint (select its YAML config with it, or every Open-Unmix target file)",
        "",
        "Checkpoints and configs (*.th *.pth *.ckpt *.pt *.yaml *.yml *.json);;All files (*)",
    )
    return [Path(f) for f in files]
