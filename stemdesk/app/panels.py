"""Dock panels: jobs, models, trainer, settings. Each shows state and asks the window to act; none runs work itself."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import StemDeskError
from ..io import settings as settings_store
from ..io.ensemble import EnsembleCard, find_ensemble, is_ensemble
from ..io.installable import INSTALLABLE
from ..io.model_store import DEFAULT_MODEL, list_models
from ..io.registry import Registry
from ..jobs.queue import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d} left"


class JobsPanel(QWidget):
    cancel_requested = Signal(object)

    COLUMNS = ("Job", "Model", "Device", "Status", "Progress", "ETA", "")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        # one line per job: a long title is shortened in its middle (the song's name ends it), never wrapped into
        # "Se… Ev…"; its whole text is the tooltip
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(self.COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        # the progress bar's own size hint is wide; the bar reads as well at a fixed 72 px
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Fixed)
        self.table.setColumnWidth(4, 72)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.table)
        self.rows: dict[int, int] = {}

    def update_job(self, job: Job, model: str = "") -> None:
        from PySide6.QtWidgets import QTableWidgetItem

        if job.id not in self.rows:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.rows[job.id] = row
            title = QTableWidgetItem(job.title)
            title.setToolTip(job.title)
            self.table.setItem(row, 0, title)
            self.table.setItem(row, 1, QTableWidgetItem(model))
            self.table.setItem(row, 2, QTableWidgetItem(job.device))
            self.table.setItem(row, 3, QTableWidgetItem(""))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            self.table.setCellWidget(row, 4, bar)
            self.table.setItem(row, 5, QTableWidgetItem(""))
            cancel = QToolButton()
            cancel.setText("✕")
            cancel.setToolTip("Cancel this job")
            cancel.setAccessibleName("Cancel")
            cancel.clicked.connect(lambda: self.cancel_requested.emit(job))
            self.table.setCellWidget(row, 6, cancel)
            # the Device column only when jobs run on more than one device (a GPU beside the CPU)
            devices = {self.table.item(r, 2).text() for r in range(self.table.rowCount())}
            self.table.setColumnHidden(2, len(devices) < 2)
        row = self.rows[job.id]
        status = {
            QUEUED: "queued",
            RUNNING: job.message or "running",
            DONE: "done",
            FAILED: "failed",
            CANCELLED: "cancelled",
        }[job.status]
        self.table.item(row, 3).setText(status)
        self.table.item(row, 3).setToolTip(job.error or "")
        self.table.cellWidget(row, 4).setValue(int(job.fraction * 1000))
        self.table.item(row, 5).setText(_eta(job.eta) if job.status == RUNNING else "")
        self.table.cellWidget(row, 6).setEnabled(job.status in (QUEUED, RUNNING))


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
            "Your own model file: Demucs .th, Open-Unmix .pth (one per target), BS/Mel-RoFormer .ckpt with its "
            "YAML. No code in it is run."
        )
        self.remove = QPushButton("Remove")
        for button in (self.use, self.install, self.import_button, self.remove):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.card, 2)
        layout.addLayout(buttons)
        self.list.currentTextChanged.connect(self._show)
        self.use.clicked.connect(lambda: self.list.currentItem() and self.use_requested.emit(self._current()))
        self.import_button.clicked.connect(self.import_requested.emit)
        self.remove.clicked.connect(lambda: self.list.currentItem() and self.remove_requested.emit(self._current()))
        self.cards = {}
        self.refresh()

    def select(self, model_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == model_id:
                self.list.setCurrentRow(row)
                return

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
        return self.list.currentItem().data(Qt.ItemDataRole.UserRole)

    def refresh(self) -> None:
        current = self.list.currentItem().data(Qt.ItemDataRole.UserRole) if self.list.currentItem() else None
        self.list.clear()
        self.cards = {card.id: card for card in list_models(registry=self.registry)}
        from PySide6.QtWidgets import QListWidgetItem

        for model_id, card in self.cards.items():
            research = "  · research" if card.raw.get("purpose") == "research" else ""
            item = QListWidgetItem(f"{model_id}  ({', '.join(card.outputs or card.sources)}){research}")
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
    return f"<h3>{escape(card.id)}</h3><p>{escape(str(card.raw.get('description', '')))}</p><table>{table}</table>"


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


class SettingsPanel(QWidget):
    """Generated from the declared schema in stemdesk.io.settings; every change is checked and saved."""

    changed = Signal(str, object)

    def __init__(self, values: dict, parent=None):
        super().__init__(parent)
        self.values = dict(values)
        form = QFormLayout(self)
        self.editors = {}
        for setting in settings_store.SCHEMA:
            value = self.values[setting.key]
            if setting.kind == "folder":
                row = QHBoxLayout()
                edit = QLineEdit(value)
                edit.setPlaceholderText(str(settings_store.default_output_folder()))
                browse = QPushButton("…")
                browse.setFixedWidth(30)
                browse.clicked.connect(lambda _=False, e=edit: self._browse(e))
                edit.editingFinished.connect(lambda k=setting.key, e=edit: self._set(k, e.text()))
                row.addWidget(edit, 1)
                row.addWidget(browse)
                form.addRow(setting.label, row)
                editor = edit
            elif setting.choices is not None:
                editor = QComboBox()
                editor.addItems([str(c) for c in setting.choices])
                editor.setCurrentText(str(value))
                # the choice itself, not its text: a number setting's choices are numbers
                editor.currentIndexChanged.connect(lambda i, k=setting.key, c=setting.choices: self._set(k, c[i]))
                form.addRow(setting.label, editor)
            elif isinstance(setting.default, bool):
                editor = QCheckBox()
                editor.setChecked(value)
                editor.toggled.connect(lambda on, k=setting.key: self._set(k, on))
                form.addRow(setting.label, editor)
            elif isinstance(setting.default, int):
                editor = QSpinBox()
                editor.setRange(int(setting.low), int(setting.high))
                editor.setValue(value)
                editor.valueChanged.connect(lambda v, k=setting.key: self._set(k, v))
                form.addRow(setting.label, editor)
            elif isinstance(setting.default, float):
                editor = QDoubleSpinBox()
                editor.setRange(setting.low, setting.high)
                editor.setValue(value)
                editor.valueChanged.connect(lambda v, k=setting.key: self._set(k, v))
                form.addRow(setting.label, editor)
            else:
                editor = QLineEdit(str(value))
                editor.editingFinished.connect(lambda k=setting.key, e=editor: self._set(k, e.text()))
                form.addRow(setting.label, editor)
            editor.setToolTip(setting.help)
            self.editors[setting.key] = editor

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)
            edit.editingFinished.emit()

    def _set(self, key: str, value) -> None:
        value = settings_store.BY_KEY[key].check(value)
        self.values[key] = value
        self.changed.emit(key, value)


class TrainerPanel(QWidget):
    """Pick a data folder, see its report, fine-tune with live curves, read the score card."""

    check_requested = Signal(str)
    train_requested = Signal(dict)
    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of song folders with stems")
        browse = QPushButton("…")
        browse.setFixedWidth(30)
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Data", row)
        self.base = QComboBox()
        self.base.addItems([card.id for card in list_models()])
        self.base.setCurrentText(DEFAULT_MODEL)
        form.addRow("Start from", self.base)
        self.name = QLineEdit("my-finetune")
        form.addRow("New model", self.name)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.5, 24 * 60)
        self.minutes.setValue(30)
        self.minutes.setSuffix(" min")
        form.addRow("Budget", self.minutes)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.check = QPushButton("Check data")
        self.start = QPushButton("Start training")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        for button in (self.check, self.start, self.cancel):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.report = QTextBrowser()  # the data report as text, the score card rendered from Markdown
        self.report.setPlaceholderText("The data report and the score card appear here.")
        layout.addWidget(self.report, 1)
        self.curves = QLabel()
        self.curves.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.curves.setMinimumHeight(120)
        self.curves.setMinimumWidth(1)  # the chart is scaled to the dock, never the dock to the chart
        layout.addWidget(self.curves, 1)
        self._chart = None
        self.history: list[dict] = []
        self.check.clicked.connect(lambda: self.check_requested.emit(self.folder.text()))
        self.start.clicked.connect(self._start)
        self.cancel.clicked.connect(self.cancel_requested.emit)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the multitrack folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _start(self) -> None:
        self.history = []
        self.train_requested.emit(
            {
                "data": self.folder.text(),
                "base": self.base.currentText(),
                "name": self.name.text().strip(),
                "minutes": self.minutes.value(),
            }
        )

    def running(self, on: bool) -> None:
        self.start.setEnabled(not on)
        self.check.setEnabled(not on)
        self.cancel.setEnabled(on)

    def add_validation(self, event: dict) -> None:
        """A validation event from the trainer: redraw the curves (matplotlib, rendered to a pixmap)."""
        self.history.append(event)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from PySide6.QtGui import QPixmap

        figure = Figure(figsize=(4.2, 1.8), dpi=100)
        axis = figure.add_subplot(111)
        steps = [h["step"] for h in self.history]
        for source in self.history[-1].get("valid_usdr", {}):
            axis.plot(steps, [h["valid_usdr"].get(source, float("nan")) for h in self.history], label=source)
        axis.set_xlabel("step")
        axis.set_ylabel("uSDR (dB)")
        axis.legend(fontsize=6, loc="lower right")
        figure.tight_layout()
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        width, height = canvas.get_width_height()
        from PySide6.QtGui import QImage

        image = QImage(bytes(canvas.buffer_rgba()), width, height, QImage.Format.Format_RGBA8888).copy()
        self._chart = QPixmap.fromImage(image)
        self._fit_chart()

    def _fit_chart(self) -> None:
        if self._chart is not None:
            self.curves.setPixmap(
                self._chart.scaled(
                    self.curves.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_chart()

    def show_text(self, text: str, markdown: bool = False) -> None:
        if markdown:
            self.report.setMarkdown(text)
        else:
            self.report.setPlainText(text)


class ExportDialog(QWidget):
    """What to export and where: the stems themselves, the instrumental, the user's mix, and each session format
    (DAWproject, REAPER, and what plugins add). Nothing heavy is checked unless asked for."""

    LABELS = {
        "stems": "Stems (a copy of each stem file, with the certificate)",
        "instrumental": "Instrumental (mixture − vocals, exact)",
        "mix": "Mix (your levels, pans and effects)",
        "dawproject": "DAWproject session (embeds the stems: large)",
        "rpp": "REAPER project (refers to the stems)",
        "stems-mp4": "NI Stem file for DJ software (.stem.mp4, ALAC: nulls)",
        "stems-mp4-aac": "NI Stem file in AAC (a fifth of the size; does not null)",
    }

    accepted = Signal(object, dict)  # folder, {choice: bool}

    def __init__(self, folder: str, exporters, choices: dict | None = None, parent=None):
        from PySide6.QtWidgets import QDialogButtonBox

        super().__init__(parent, Qt.WindowType.Dialog)
        self.setWindowTitle("Export")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        layout = QVBoxLayout(self)
        self.boxes: dict[str, QCheckBox] = {}
        keys = ["stems", "instrumental", "mix", *exporters]
        for key in keys:
            box = QCheckBox(self.LABELS.get(key, f"{key} (plugin exporter)"))
            box.setChecked((choices or {}).get(key, key == "instrumental"))
            self.boxes[key] = box
            layout.addWidget(box)
        row = QHBoxLayout()
        self.folder = QLineEdit(folder)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Into"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.close)
        layout.addWidget(self.buttons)
        for box in self.boxes.values():
            box.toggled.connect(self._enable)
        self._enable()

    def _enable(self) -> None:
        from PySide6.QtWidgets import QDialogButtonBox

        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            any(b.isChecked() for b in self.boxes.values())
        )

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    def _accept(self) -> None:
        self.accepted.emit(Path(self.folder.text()), {k: b.isChecked() for k, b in self.boxes.items()})
        self.close()


def checkpoint_files_dialog(parent) -> list[Path]:
    """The checkpoint to import (with its YAML config, or Open-Unmix's per-target files, chosen together)."""
    files, _ = QFileDialog.getOpenFileNames(
        parent,
        "Import checkpoint (select its YAML config with it, or every Open-Unmix target file)",
        "",
        "Checkpoints and configs (*.th *.pth *.ckpt *.pt *.yaml *.yml *.json);;All files (*)",
    )
    return [Path(f) for f in files]


def open_files_dialog(parent) -> list[Path]:
    from ..io.audio import SONG_SUFFIXES_READ

    patterns = " ".join(f"*{s}" for s in SONG_SUFFIXES_READ)
    files, _ = QFileDialog.getOpenFileNames(parent, "Open songs", "", f"Audio ({patterns});;All files (*)")
    return [Path(f) for f in files]
