"""The window's model work: install (a licence to read first where it is not free), import a checkpoint, remove,
the offer bar's better model after a separation, and the Trainer dock's data check and fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox

from ..core.errors import StemDeskError
from ..io.installable import INSTALLABLE
from ..io.model_store import remove_model
from ..jobs.queue import Job
from ..session import hints, tasks
from .errors import words
from .models_panel import checkpoint_files_dialog

if TYPE_CHECKING:
    from .window import MainWindow


class ModelsFlow:
    def __init__(self, window: MainWindow):
        self.w = window
        self.licence_box: QMessageBox | None = None  # the licence being read before an install, if any

    def offer_better_model(self, model: str) -> None:
        """After a separation with ``model``: the bar above the timeline offers HTDemucs when ``model`` is the default
        and HTDemucs is not installed, until the user answers it (`stemdesk.session.hints`)."""
        if not self.w.offer_bar.isHidden():  # already offered, not yet answered
            return
        offer = hints.offer_after_separation(model, "app", self.w.registry)
        if offer is not None:
            self.w.offer_bar.show_offer(offer)

    def offer_install(self, model: str) -> None:
        """Install… on the offer: the Models dock's install, with its licence to accept (for HTDemucs)."""
        hints.record("app", "accepted")
        self.w.docks["Models"].raise_()
        self.install_model(model)

    def install_model(self, name: str) -> None:
        """Install a registry model; one whose licence is not free (HTDemucs) is installed only after the user
        has read its licence and pressed Install."""
        w = self.w
        item = INSTALLABLE[name]

        def start() -> None:
            w.run_task(tasks.install_model(name), "install", on_end=lambda job: self.changed())
            w.docks["Jobs"].raise_()

        if item.licence_note is None:
            start()
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"Install {item.title}?",
            f"{item.summary}.\n\n{item.licence_note}\n\nStemDesk downloads {item.download}.",
            QMessageBox.StandardButton.Cancel,
            w,
        )
        install = box.addButton("Install for personal or research use", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)
        box.buttonClicked.connect(lambda button: start() if button is install else None)
        box.open()
        w.keep_open(box)
        self.licence_box = box

    def import_checkpoint(self, files: list[Path] | None = None) -> Job | None:
        """Import a checkpoint (asking for the files unless given): a .yaml/.yml/.json chosen with it is its
        config. The new model is listed and selected when the job ends."""
        w = self.w
        files = checkpoint_files_dialog(w) if files is None else files
        if not files:
            return None

        def done(card) -> None:
            self.changed()
            w.models_panel.select(card.id)
            w.status(f"Imported {card.id} ({', '.join(card.sources)}); its licence is unknown.", 15000)

        job = w.run_task(tasks.import_model(files), "import", on_done=done)
        w.docks["Jobs"].raise_()
        return job

    def remove_model(self, model_id: str) -> None:
        try:
            folder = remove_model(model_id)
        except StemDeskError as error:
            self.w.show_error("Cannot remove the model", words(error))
            return
        self.w.status(f"Removed {model_id} ({folder}).")
        self.changed()

    def changed(self) -> None:
        """The installed models changed: the Models dock and the Model box list them again."""
        self.w.models_panel.refresh()
        self.w.refresh_models()

    def check_data(self, folder: str) -> Job:
        trainer = self.w.trainer
        return self.w.run_task(
            tasks.check_data(Path(folder)), "check", on_done=lambda report: trainer.show_text(report.text)
        )

    def start_training(self, request: dict) -> Job | None:
        w = self.w
        if not request["data"] or not request["name"]:
            w.show_error("Cannot train", "Choose a data folder and a name for the new model.")
            return None

        def done(tuned: tasks.Tuned) -> None:
            w.trainer.report.setSearchPaths([tuned.folder])  # the card's curves.png
            w.trainer.show_text(tuned.markdown, markdown=True)

        def ended(job: Job) -> None:
            w.trainer.running(self.training())  # the book no longer counts the job that ended
            self.changed()

        task = tasks.fine_tune(
            tasks.FineTune(
                Path(request["data"]),
                request["base"],
                request["name"],
                minutes=request["minutes"],
                threads=int(w.settings["threads"]),
            )
        )
        job = w.run_task(task, "train", on_done=done, on_end=ended, on_progress=w.trainer.progress)
        w.trainer.running(True)
        return job

    def training(self) -> bool:
        """Whether a fine-tuning job is running (queued or working), as the window's job book counts them."""
        return self.w.job_book.running("train") > 0

    def cancel_training(self) -> None:
        """The Trainer dock's Cancel: the book cancels the running fine-tuning job."""
        self.w.job_book.cancel("train")
