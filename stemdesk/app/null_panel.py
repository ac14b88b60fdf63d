"""The Null dock: what the null check found and where, per stem and per window of time.

The residual Σ stems − mix is one signal. It says how far the stems are from the song and where, not which stem is
off: adding x to one stem and taking it from another leaves it unchanged. So the dock shows the residual once (the
certificate's, or the files' measured again, and the live one while playing), and per stem what can be known of
each: whether its file is still the one the certificate hashed, its share of the music, and what the mix does to it.
When exactly one file changed since a certificate that nulled, the residual is that file's edit, and the dock says so.
The loudest windows of the residual are listed with their times and peaks: a click plays from one, Loop loops it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..export.nullcheck import NullResult
from ..mixer.mix import Channel, Mix
from ..session.tasks import Recheck
from .playback import LiveNull
from .timeline import NULL_RED, clock

GOOD = "#5cb85c"
CLIPPED = "#e0a040"  # amber: the stems null, and their depth clipped the song


def _db(value: float | None) -> str:
    return "−∞" if value is None else f"{value:.1f}".replace("-", "−")


def mix_words(channel: Channel | None) -> str:
    """What the mix does to a stem, in a few words ("unity" when its file is heard as it is)."""
    if channel is None:
        return "unity"
    words = []
    if channel.gain_db:
        words.append(f"{channel.gain_db:+.1f} dB".replace("-", "−"))
    if channel.pan:
        words.append(f"pan {'L' if channel.pan < 0 else 'R'} {round(abs(channel.pan) * 100)}")
    active = [effect for effect in channel.effects if not effect.bypass]
    if active:
        words.append(f"{len(active)} effect{'s' if len(active) > 1 else ''}")
    if channel.sends:
        words.append("sends")
    if channel.mute:
        words.append("muted")
    if channel.solo:
        words.append("soloed")
    return ", ".join(words) or "unity"


def summary(null: NullResult | None, check: Recheck | None) -> tuple[str, bool]:
    """What the last null check found, in a sentence or three, and whether it passed."""
    if null is None:
        return "Not checked: these stems have no certificate to read.", False
    where = f"residual peak {_db(null.peak_dbfs)} dBFS, RMS {_db(null.rms_dbfs)} dBFS"
    clipping = f" Warning: {null.clipping}." if null.clipping else ""
    if check is None or not check.measured:
        source = "the files are the ones it hashed" if check is not None else "measured on the files as written"
        return f"Certificate: {null.verdict} ({where}); {source}.{clipping}", null.passed
    if check.certified is None:
        return f"No certificate: measured on the files as they are, {null.verdict} ({where}).{clipping}", null.passed
    text = f"Checked again: {null.verdict} ({where})."
    if check.changed:
        files = ", ".join(check.changed)
        text += f" Changed since the certificate: {files}."
        if check.culprit is not None:
            text += f" The residual is exactly the edit to {check.culprit}: everything else still nulls."
        elif len(check.changed) > 1:
            text += " The residual is their edits together; it cannot be split between them."
    if check.song_changed:
        text += " The song's file changed too: the stems are measured against the song as it is now."
    return text + clipping, null.passed


class NullPanel(QWidget):
    """The null dock: a summary, a row per stem and a row per residual window."""

    seek_requested = Signal(float)  # seconds
    loop_requested = Signal(object)  # (start, end) seconds

    def __init__(self, parent=None):
        super().__init__(parent)
        self.regions: list[dict] = []  # in song time, loudest first
        layout = QVBoxLayout(self)
        self.summary = QLabel("No stems yet.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.live = QLabel("Live: not playing.")
        self.live.setWordWrap(True)
        self.live.setToolTip(
            "Σ stems − song over what is being played, from the stem files at unity: faders and effects do not "
            "change it (a bounce of a mix that changes levels cannot null)."
        )
        layout.addWidget(self.summary)
        layout.addWidget(self.live)
        self.stems = QTableWidget(0, 5)
        for column, (title, tip) in enumerate(
            (
                ("Stem", ""),
                ("File", "Is it still the file the certificate hashed?"),
                ("Share", "Its share of the stems' energy over the song"),
                ("Playing", "Its share of the stems' energy in the last second played"),
                ("In your mix", "What the mix does to it (the null is measured on the files, at unity)"),
            )
        ):
            header = QTableWidgetItem(title)
            header.setToolTip(tip)
            self.stems.setHorizontalHeaderItem(column, header)
        self.windows = QTableWidget(0, 4)
        self.windows.setHorizontalHeaderLabels(["#", "From", "To", "Peak (dBFS)"])
        for table in (self.stems, self.windows):
            table.verticalHeader().setVisible(False)
            table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
            table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
            table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            table.horizontalHeader().setStretchLastSection(True)
        self.windows.cellClicked.connect(
            lambda row, column: self.seek_requested.emit(self.regions[row]["start_seconds"])
        )
        self.windows.cellDoubleClicked.connect(lambda row, column: self.loop(row))
        self.windows.setToolTip("Click: play from this window; double-click or Loop: loop it")
        self.windows.horizontalHeader().setStretchLastSection(False)
        layout.addWidget(self.stems, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Loudest residual windows"))
        buttons.addStretch(1)
        self.play_button = QPushButton("Play from here")
        self.play_button.clicked.connect(
            lambda: self._selected(lambda row: self.seek_requested.emit(self.regions[row]["start_seconds"]))
        )
        self.loop_button = QPushButton("Loop it")
        self.loop_button.clicked.connect(lambda: self._selected(self.loop))
        buttons.addWidget(self.play_button)
        buttons.addWidget(self.loop_button)
        layout.addLayout(buttons)
        layout.addWidget(self.windows, 2)

    def _selected(self, act) -> None:
        rows = self.windows.selectionModel().selectedRows()
        if rows:
            act(rows[0].row())

    def loop(self, row: int) -> None:
        region = self.regions[row]
        self.loop_requested.emit((region["start_seconds"], region["end_seconds"]))

    def show_null(
        self,
        null: NullResult | None,
        check: Recheck | None,
        stems: list[str],
        mix: Mix,
        regions: list[dict],
        live: LiveNull | None = None,
    ) -> None:
        """The last null check (``regions``: its windows in song time) and, while playing, the live null."""
        if not stems:
            self.summary.setText("No stems yet.")
            self.summary.setStyleSheet("")
        else:
            text, passed = summary(null, check)
            self.summary.setText(text)
            self.summary.setStyleSheet(f"color: {GOOD if passed else NULL_RED};")
        changed = set(check.changed) if check is not None else set()
        certified = null is not None and (check is None or check.certified is not None)
        shares = live.shares() if live is not None else {}
        self.stems.setRowCount(len(stems))
        for row, name in enumerate(stems):
            share = null.energy_share.get(name) if null is not None else None
            state = "changed" if name in changed else ("as certified" if certified else "not certified")
            if check is not None and name == check.culprit:
                state = "changed: the residual is its edit"
            cells = [
                name,
                state,
                "" if share is None else f"{share * 100:.0f} %",
                f"{shares[name] * 100:.0f} %" if name in shares else "",
                mix_words(mix.channels.get(name)),
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 1:
                    item.setForeground(QColor(NULL_RED if name in changed else GOOD if certified else "#9aa3ad"))
                self.stems.setItem(row, column, item)
        self.show_live(live)
        if regions != self.regions:
            self.regions = list(regions)
            self.windows.setRowCount(len(regions))
            for row, region in enumerate(regions):
                cells = [
                    str(row + 1),
                    clock(region["start_seconds"]),
                    clock(region["end_seconds"]),
                    _db(region.get("peak_dbfs")),
                ]
                for column, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.windows.setItem(row, column, item)
        has = bool(self.regions)
        self.play_button.setEnabled(has)
        self.loop_button.setEnabled(has)

    def show_live(self, live: LiveNull | None) -> None:
        if live is None or not live.seconds:
            self.live.setText("Live: not playing.")
            return
        self.live.setText(
            f"Live: residual peak {_db(live.peak_dbfs)} dBFS in the last {live.seconds:.1f} s played (files at unity)"
        )
