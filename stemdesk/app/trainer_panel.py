"""The Trainer dock: check a data folder, fine-tune a model, and its score card."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..io.model_store import DEFAULT_MODEL, list_models


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
        self.refresh_bases(DEFAULT_MODEL)
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

    def refresh_bases(self, choose: str | None = None) -> None:
        """Fill "Start from" with every installed model (HTDemucs too, once installed: its fine-tune trains as its
        kind's advice says), keeping the choice; called again whenever the dock is shown, so a model installed
        since (from the Models dock or the command line) is offered."""
        current = choose or self.base.currentText()
        ids = [card.id for card in list_models() if card.split_parent is None]  # split models: stemdesk train --split
        if ids != [self.base.itemText(i) for i in range(self.base.count())]:
            self.base.blockSignals(True)
            self.base.clear()
            self.base.addItems(ids)
            self.base.blockSignals(False)
        if current in ids:
            self.base.setCurrentText(current)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_bases()

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

    def progress(self, event) -> None:
        """A progress event of the fine-tuning job: the curves follow its validation scores."""
        if isinstance(event, dict) and "valid_usdr" in event:
            self.add_validation(event)

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
