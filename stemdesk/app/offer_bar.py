"""A bar above the timeline that offers a model to install (see `stemdesk.session.hints`): never a dialog, so it
blocks nothing; it stays until the user answers it with Install… or No thanks."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ..session.hints import Offer
from .theme import ACCENT


class OfferBar(QFrame):
    install_requested = Signal(str)  # the model's id
    declined = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("offer-bar")
        self.setStyleSheet(f"QFrame#offer-bar {{ border: 1px solid {ACCENT}; border-radius: 4px; }}")
        self.offer: Offer | None = None
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.install = QPushButton("Install…")
        self.install.setDefault(False)
        self.no_thanks = QPushButton("No thanks")
        self.install.clicked.connect(lambda: self._answer(self.install_requested))
        self.no_thanks.clicked.connect(lambda: self._answer(self.declined))
        buttons = QVBoxLayout()
        buttons.addWidget(self.install)
        buttons.addWidget(self.no_thanks)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        row.addWidget(self.text, 1)
        row.addLayout(buttons)
        self.hide()

    def show_offer(self, offer: Offer) -> None:
        self.offer = offer
        self.text.setText(offer.text)
        self.install.setText(f"Install {offer.title}\u2026")
        self.show()

    def _answer(self, signal) -> None:
        offer = self.offer
        self.hide()
        if offer is not None:
            signal.emit(offer.model)
