"""The Jobs dock: every job with its progress, time left and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

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
            devices = {self._item(r, 2).text() for r in range(self.table.rowCount())}
            self.table.setColumnHidden(2, len(devices) < 2)
        row = self.rows[job.id]
        status = {
            QUEUED: "queued",
            RUNNING: job.message or "running",
            DONE: "done",
            FAILED: "failed",
            CANCELLED: "cancelled",
        }[job.status]
        self._item(row, 3).setText(status)
        self._item(row, 3).setToolTip(job.error or "")
        progress = self.table.cellWidget(row, 4)
        assert isinstance(progress, QProgressBar)
        progress.setValue(int(job.fraction * 1000))
        self._item(row, 5).setText(_eta(job.eta) if job.status == RUNNING else "")
        self.table.cellWidget(row, 6).setEnabled(job.status in (QUEUED, RUNNING))

    def _item(self, row: int, column: int) -> QTableWidgetItem:
        item = self.table.item(row, column)
        assert item is not None  # every row's cells are made with it
        return item
