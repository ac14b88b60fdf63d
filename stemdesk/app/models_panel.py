"""The Models dock: the installed models and ensembles with their cards, install, import and remove; and the model
catalog (`stemdesk.io.catalog`), each model with its stems, download size, licence and speed, installed from here with
its download's progress and a Cancel."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMenu,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import StemDeskError
from ..io.catalog import CatalogEntry, load_catalog
from ..io.ensemble import EnsembleCard, find_ensemble, is_ensemble
from ..io.installable import INSTALLABLE
from ..io.model_store import ModelCard, is_research, list_models
from ..io.registry import Registry

# The catalog's columns: what a producer decides on, as the publisher states it (the card below says where from)
CATALOG_COLUMNS = ("Model", "State", "Download", "Stems", "Licence", "Speed")
INSTALLED, NOT_INSTALLED, CANNOT_RUN = "installed", "not installed", "cannot run yet"
CATALOG_NOTE = "The community's models, as their publishers describe them. Install\u2026 shows the licence first."


class ModelsPanel(QWidget):
    install_requested = Signal(str)  # a registry model (the Install… menu) or a catalog model (the Catalog tab)
    install_from_files_requested = Signal(str)  # a catalog model, from its files fetched elsewhere
    import_requested = Signal()
    remove_requested = Signal(str)
    use_requested = Signal(str)
    cancel_download_requested = Signal()

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
        installed = QWidget()
        column = QVBoxLayout(installed)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.list, 1)
        # the models a user separates with first; the papers' methods trained here only when asked for
        self.show_research = QCheckBox("Show research models")
        self.show_research.setToolTip(
            "Paper methods trained from scratch with a recipe (stemdesk train --recipe): for comparison, not for work"
        )
        self.show_research.toggled.connect(lambda _: self.refresh())
        column.addWidget(self.show_research)
        column.addLayout(buttons)

        # the model catalog: the community's models, installed after their licence is read and accepted
        self.catalog = QTreeWidget()
        self.catalog.setColumnCount(len(CATALOG_COLUMNS))
        self.catalog.setHeaderLabels(CATALOG_COLUMNS)
        self.catalog.setRootIsDecorated(False)
        self.catalog.setUniformRowHeights(True)
        self.catalog.setColumnWidth(3, 200)  # stems; the model, its state and its size fit their texts
        self.catalog.setColumnWidth(4, 240)  # the licence: its whole text is the cell's tooltip and in the card
        self.catalog_install = QPushButton("Install\u2026")
        self.catalog_install.setToolTip("Shows the model's licence; it is downloaded and installed once you accept it")
        self.catalog_from_files = QPushButton("From files\u2026")
        self.catalog_from_files.setToolTip(
            "Install it from its files fetched on another machine (for a computer without a connection): they are "
            "checked against the catalog as a download is"
        )
        self.catalog_note = QLabel(CATALOG_NOTE)
        self.catalog_note.setWordWrap(True)
        catalog_tab = QWidget()
        column = QVBoxLayout(catalog_tab)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.catalog, 1)
        row = QHBoxLayout()
        row.addWidget(self.catalog_note, 1)
        row.addWidget(self.catalog_from_files)
        row.addWidget(self.catalog_install)
        column.addLayout(row)

        self.tabs = QTabWidget()
        self.tabs.addTab(installed, "Installed")
        self.tabs.addTab(catalog_tab, "Catalog")

        # a catalog download: its fraction, its own words (MB, rate, time left) and a Cancel; hidden until one runs
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_text = QLabel("")
        self.progress_text.setWordWrap(True)
        self.cancel_download = QPushButton("Cancel")
        self.cancel_download.setToolTip("Stop the download; the part downloaded is kept, and Install resumes it")
        download = QHBoxLayout()
        download.addWidget(self.progress, 1)
        download.addWidget(self.cancel_download)
        self.download_box = QWidget()
        box = QVBoxLayout(self.download_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.progress_text)
        box.addLayout(download)
        self.download_box.hide()
        self.downloading: str | None = None  # the catalog model being installed, if any

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.card, 1)
        layout.addWidget(self.download_box)
        self.list.currentTextChanged.connect(self._show)
        self.catalog.currentItemChanged.connect(lambda *_: self._show_entry())
        self.tabs.currentChanged.connect(lambda _: self._show_current())
        self.use.clicked.connect(lambda: self._ask(self.use_requested))
        self.import_button.clicked.connect(self.import_requested.emit)
        self.remove.clicked.connect(lambda: self._ask(self.remove_requested))
        self.catalog_install.clicked.connect(self._install_entry)
        self.catalog_from_files.clicked.connect(self._install_entry_from_files)
        self.cancel_download.clicked.connect(self.cancel_download_requested.emit)
        self.cards: dict[str, ModelCard] = {}
        self.hidden: set[str] = set()
        self.entries: dict[str, CatalogEntry] = {}
        self.catalog_items: list[QTreeWidgetItem] = []
        self.installed: set[str] = set()
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
        self.installed = {card.id for card in every}
        self._fill_catalog()

    def _fill_catalog(self) -> None:
        """The catalog's models, one row each, with whether each is installed (the catalog is read again: a studio
        may edit its own)."""
        current = self._entry_id()
        self.catalog.clear()
        self.catalog_items = []
        self.catalog_note.setText(CATALOG_NOTE)
        try:
            self.entries = load_catalog()
        except StemDeskError as error:  # a STEMDESK_CATALOG that cannot be read: said where the models would be
            self.entries = {}
            self.catalog_note.setText(str(error))
        for entry in self.entries.values():
            item = QTreeWidgetItem([entry.id, self.state(entry), *catalog_facts(entry)])
            item.setData(0, Qt.ItemDataRole.UserRole, entry.id)
            for column in range(len(CATALOG_COLUMNS)):
                item.setToolTip(column, f"{entry.name}: {entry.summary}")
            item.setToolTip(
                CATALOG_COLUMNS.index("Licence"),
                f"As its publisher states it: {entry.licence} ({entry.licence_source})",
            )
            self.catalog.addTopLevelItem(item)
            self.catalog_items.append(item)
            if entry.id == current:
                self.catalog.setCurrentItem(item)
        for column in range(3):
            self.catalog.resizeColumnToContents(column)
        self.tabs.setTabText(1, f"Catalog ({len(self.entries)})")
        if self.catalog.currentItem() is None and self.catalog_items:
            self.catalog.setCurrentItem(self.catalog_items[0])
        self._show_current()

    def state(self, entry: CatalogEntry) -> str:
        if entry.id in self.installed:
            return INSTALLED
        return NOT_INSTALLED if entry.runs else CANNOT_RUN

    def catalog_rows(self) -> dict[str, list[str]]:
        """The Catalog tab's rows as shown, by model id: its columns' texts (`CATALOG_COLUMNS`)."""
        return {item.text(0): [item.text(c) for c in range(len(CATALOG_COLUMNS))] for item in self.catalog_items}

    def select_entry(self, model_id: str) -> None:
        """Show the Catalog tab with ``model_id`` selected."""
        self.tabs.setCurrentIndex(1)
        for item in self.catalog_items:
            if item.data(0, Qt.ItemDataRole.UserRole) == model_id:
                self.catalog.setCurrentItem(item)

    def _entry_id(self) -> str | None:
        item = self.catalog.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _install_entry(self) -> None:
        model_id = self._entry_id()
        if model_id is not None:
            self.install_requested.emit(model_id)

    def _install_entry_from_files(self) -> None:
        model_id = self._entry_id()
        if model_id is not None:
            self.install_from_files_requested.emit(model_id)

    def _show_current(self) -> None:
        if self.tabs.currentIndex() == 1:
            self._show_entry()
        else:
            self._show("")

    def _show_entry(self) -> None:
        entry = self.entries.get(self._entry_id() or "")
        installable = entry is not None and self.state(entry) == NOT_INSTALLED and self.downloading is None
        self.catalog_install.setEnabled(installable)
        self.catalog_from_files.setEnabled(installable)
        if self.tabs.currentIndex() != 1:
            return
        if entry is None:
            self.card.clear()
            return
        self.card.setHtml(entry_html(entry, self.state(entry)))

    def _show(self, _text: str) -> None:
        if self.tabs.currentIndex() != 0:  # the catalog's model is on show
            return
        if self.list.currentItem() is None:
            self.card.clear()
            return
        self.card.setHtml(card_html(self.cards[self._current()]))

    # --- a catalog model's download (`ModelsFlow.install_from_catalog` runs it as a job) -----------------------
    def download_started(self, model_id: str) -> None:
        self.downloading = model_id
        self.progress.setValue(0)
        self.progress_text.setText(f"Installing {model_id}\u2026")
        self.progress.show()
        self.cancel_download.show()
        self.cancel_download.setEnabled(True)
        self.download_box.show()
        self._show_entry()

    def download_progress(self, event: dict) -> None:
        """A progress report of the install: its fraction on the bar, its words (the download's MB, rate and time
        left) beside it."""
        if event.get("message"):
            self.progress_text.setText(str(event["message"]))
        total = float(event.get("total") or 0)
        if total:
            self.progress.setValue(round(1000 * min(1.0, float(event.get("done", 0)) / total)))

    def cancelling(self) -> None:
        self.cancel_download.setEnabled(False)
        self.progress_text.setText(f"Stopping the download of {self.downloading}\u2026")

    def download_ended(self, text: str) -> None:
        """The install ended (``text`` says how); the bar and Cancel go, the words stay until the next install."""
        self.downloading = None
        self.progress.hide()
        self.cancel_download.hide()
        self.progress_text.setText(text)
        self.download_box.setVisible(bool(text))
        self._show_entry()


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


def catalog_facts(entry: CatalogEntry) -> list[str]:
    """A catalog row's facts after its id and state: download size, stems (a model of a stem: what it splits into),
    licence as the publisher states it, speed as the catalog records it."""
    stems = entry.stems_text()
    if entry.applies_to is not None:
        stems = f"{entry.applies_to.parent} \u2192 {', '.join(entry.applies_to.children)}"
    return [entry.size_text(), stems, entry.licence, entry.speed_text()]


def entry_html(entry: CatalogEntry, state: str) -> str:
    """A catalog model's page: what it is and does, what installing it fetches, and its licence, quality and speed
    as its publisher states them (with where each was read)."""
    publisher = entry.raw.get("publisher") or {}
    rows = [("Separates", escape(entry.stems_text()))]
    if entry.applies_to is not None:
        children = ", ".join(
            f"{entry.applies_to.parent}/{child}" + ("" if child == stem else f" (its {stem})")
            for child, stem in entry.applies_to.children.items()
        )
        what, parent = "Cleans" if entry.applies_to.removes else "Splits", escape(entry.applies_to.parent)
        rows.append(
            (
                "On a stem",
                f"{what} a {parent} stem into {escape(children)}, which add up to it exactly (once installed: a "
                f"{parent} lane's menu \u2192 Split {parent} with)",
            )
        )
    rows += [
        ("Download", f"{escape(entry.size_text())} from {escape(entry.download_text())}"),
        ("Licence", f"{escape(entry.licence)} (as its publisher states it; read at {escape(entry.licence_source)})"),
    ]
    if entry.raw.get("caution"):
        rows.append(("Caution", escape(str(entry.raw["caution"]))))
    rows += [
        ("Training data", escape(entry.training_data)),
        ("Quality", escape(entry.quality_text())),
        ("Speed", escape(entry.speed_text())),
    ]
    if publisher:
        rows.append(
            ("Publisher", f"{escape(str(publisher.get('name', '')))} ({escape(str(publisher.get('page', '')))})")
        )
    rows.append(("State", escape(state if entry.runs else f"{state}: {entry.cannot_run}")))
    table = "".join(
        f"<tr><td style='padding-right:8px;vertical-align:top'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows
    )
    head = f"<h3>{escape(entry.name)}</h3><p><b>{escape(entry.summary)}</b></p><p>{escape(entry.id)}</p>"
    return f"{head}<table>{table}</table>"


def catalog_files_dialog(parent, entry: CatalogEntry) -> list[Path]:
    """A catalog model's files fetched elsewhere (its weights, and its YAML where the catalog does not hold it)."""
    names = [item.file for item in entry.files]
    if entry.config is not None and entry.config.content is None:
        names.append(entry.config.file)
    files, _ = QFileDialog.getOpenFileNames(
        parent,
        f"Install {entry.name} from files: choose {', '.join(names)}",
        "",
        "Model files (*.th *.pth *.ckpt *.pt *.yaml *.yml *.json);;All files (*)",
    )
    return [Path(f) for f in files]


def checkpoint_files_dialog(parent) -> list[Path]:
    """The checkpoint to import (with its YAML config, Open-Unmix's per-target files, or a Demucs bag's .th files
    with its YAML, chosen together)."""
    files, _ = QFileDialog.getOpenFileNames(
        parent,
        "Import checkpoint (select its YAML config with it, every Open-Unmix target file, or a Demucs bag's files "
        "with its YAML)",
        "",
        "Checkpoints and configs (*.th *.pth *.ckpt *.pt *.yaml *.yml *.json);;All files (*)",
    )
    return [Path(f) for f in files]
