"""The window's model work: install (a licence to read first where it is not free; a catalog model's download with
its progress and Cancel in the Models dock), import a checkpoint, remove, the offer bar's better model after a
separation, and the Trainer dock's data check and fine-tuning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.errors import StemDeskError
from ..io.catalog import CatalogEntry, find_entry
from ..io.installable import INSTALLABLE
from ..io.model_store import remove_model
from ..io.registry import Registry
from ..jobs.queue import CANCELLED, DONE, Job
from ..session import hints, tasks
from ..session.jobs import JobBook
from .errors import words
from .front import Front
from .models_panel import ModelsPanel, catalog_files_dialog, checkpoint_files_dialog
from .offer_bar import OfferBar
from .trainer_panel import TrainerPanel


class ModelsFlow:
    """``refresh_models()`` lists the installed models again in the toolbar's Model box; the job book counts the
    fine-tuning jobs; questions open over ``parent``."""

    def __init__(
        self,
        front: Front,
        parent: QWidget,
        registry: Registry | None,
        settings: dict,
        job_book: JobBook,
        offer_bar: OfferBar,
        models_panel: ModelsPanel,
        trainer: TrainerPanel,
        refresh_models: Callable[[], None],
    ):
        self.front, self.parent, self.registry, self.settings = front, parent, registry, settings
        self.job_book, self.offer_bar, self.models_panel = job_book, offer_bar, models_panel
        self.trainer, self.refresh_models = trainer, refresh_models
        self.licence_box: QMessageBox | None = None  # the licence being read before an install, if any
        self.download: Job | None = None  # the catalog model being installed, if any

    def offer_better_model(self, model: str) -> None:
        """After a separation with ``model``: the bar above the timeline offers HTDemucs when ``model`` is the default
        and HTDemucs is not installed, until the user answers it (`stemdesk.session.hints`)."""
        if not self.offer_bar.isHidden():  # already offered, not yet answered
            return
        offer = hints.offer_after_separation(model, "app", self.registry)
        if offer is not None:
            self.offer_bar.show_offer(offer)

    def offer_install(self, model: str) -> None:
        """Install… on the offer: the Models dock's install, with its licence to accept (for HTDemucs)."""
        hints.record("app", "accepted")
        self.front.raise_dock("Models")
        self.install_model(model)

    def install_model(self, name: str) -> None:
        """Install a registry model or a catalog model (`install_from_catalog`); one whose licence is not free
        (HTDemucs) is installed only after the user has read its licence and pressed Install."""
        if name not in INSTALLABLE:
            self.install_from_catalog(name)
            return
        front, item = self.front, INSTALLABLE[name]

        def start() -> None:
            front.run_task(tasks.install_model(name), "install", on_end=lambda job: self.changed())
            front.raise_dock("Jobs")

        if item.licence_note is None:
            start()
            return
        self._ask_licence(
            f"Install {item.title}?",
            f"{item.summary}.\n\n{item.licence_note}\n\nStemDesk downloads {item.download}.",
            "Install for personal or research use",
            start,
        )

    def _ask_licence(self, title: str, text: str, accept: str, on_accept: Callable[[], object]) -> None:
        """A licence to read before an install, in a box that does not block the window (``licence_box`` while it
        is open): ``on_accept`` runs only when the ``accept`` button is pressed."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self.parent)
        install = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)
        box.buttonClicked.connect(lambda button: on_accept() if button is install else None)
        box.open()
        self.front.keep_open(box)
        self.licence_box = box

    def install_from_catalog(self, model_id: str) -> None:
        """A catalog model: its licence as the publisher states it is shown, and only once the user accepts it is it
        downloaded and installed, as a job whose progress and Cancel the Models dock shows."""
        entry = self._installable(model_id)
        if entry is not None:
            self._ask_licence(
                f"Install {entry.name}?",
                f"{entry.licence_text()}\n\nInstall it under that licence?",
                "Accept the licence and install",
                lambda: self._install(entry),
            )

    def install_from_files(self, model_id: str, files: list[Path] | None = None) -> None:
        """A catalog model from its files fetched elsewhere (a studio computer without a connection): its licence
        first, as for a download, then the files (asked for unless given), checked against the catalog and
        installed as a job; a .yaml/.yml/.json among them is its config."""
        entry = self._installable(model_id)
        if entry is None:
            return

        def chosen() -> None:
            picked = catalog_files_dialog(self.parent, entry) if files is None else files
            if picked:
                self._install(entry, picked)

        self._ask_licence(
            f"Install {entry.name} from files?",
            f"{entry.licence_text()}\n\nInstall it under that licence? Then choose its files.",
            "Accept the licence and choose the files",
            chosen,
        )

    def _installable(self, model_id: str) -> CatalogEntry | None:
        """The catalog's entry to install, or None with the reason shown."""
        try:
            entry = find_entry(model_id)
        except StemDeskError as error:  # the catalog file cannot be read
            self.front.show_error("Cannot read the model catalog", words(error))
            return None
        if entry is None:
            self.front.show_error("Cannot install", f"No model {model_id!r} is in the model catalog.")
            return None
        if not entry.runs:
            self.front.show_error(f"Cannot install {entry.name}", entry.not_runnable())
            return None
        if self.download is not None:
            self.front.show_error(
                f"Cannot install {entry.name} yet",
                f"{self.download.model} is being installed: install {entry.id} when it is done, or cancel it.",
            )
            return None
        return entry

    def _install(self, entry: CatalogEntry, files: list[Path] | None = None) -> Job | None:
        """The licence was accepted: download (or take ``files``), check and install ``entry`` in the background. A
        failure is shown by the window (its message says how to fetch the file by hand); a cancel keeps the partial
        download."""
        if self.download is not None:  # the box was answered twice
            return None
        panel = self.models_panel
        from ..io.model_import import CONFIG_SUFFIXES  # torch loads with it: when an install starts, not with the app

        configs = [f for f in files or () if f.suffix.lower() in CONFIG_SUFFIXES]
        weights = [f for f in files or () if f not in configs]

        def done(card) -> None:
            self.changed()
            parent = card.split_parent
            where = (
                f"a {parent} lane's menu splits with it (Split {parent} with \u25b8 {card.id})"
                if parent
                else "choose it in the Model box to separate with it"
            )
            self.front.status(f"Installed {card.id} ({', '.join(card.sources)}): {where}.", 15000)

        def ended(job: Job) -> None:
            self.download = None
            if job.status == DONE:
                text = f"Installed {entry.id}" + (" from the files chosen." if files else ".")
            elif job.status == CANCELLED:
                text = f"Cancelled: the part of {entry.id} downloaded is kept, and Install\u2026 resumes it."
            elif files:
                text = f"{entry.id} was not installed from those files (the message says why)."
            else:
                text = f"{entry.id} was not installed (the message says why); with its file fetched elsewhere: From files\u2026"
            panel.download_ended(text)
            self.changed()

        if files and (len(configs) > 1 or not weights):
            wanted = ", ".join(item.file for item in entry.files)
            self.front.show_error(
                f"Cannot install {entry.name}",
                f"Choose its weights ({wanted}), with at most one config (.yaml); nothing was installed.",
            )
            return None
        task = tasks.install_model(entry.id, weights or None, configs[0] if configs else None)  # none: downloaded
        job = self.front.run_task(task, "install", on_done=done, on_end=ended, on_progress=panel.download_progress)
        self.download = job
        panel.download_started(entry.id)
        return job

    def cancel_download(self) -> None:
        """The Models dock's Cancel: the download stops at its next bytes; what was fetched is kept for the next
        install to resume."""
        if self.download is not None:
            self.models_panel.cancelling()
            self.download.cancel()

    def import_checkpoint(self, files: list[Path] | None = None) -> Job | None:
        """Import a checkpoint (asking for the files unless given): a .yaml/.yml/.json chosen with it is its
        config. The new model is listed and selected when the job ends."""
        files = checkpoint_files_dialog(self.parent) if files is None else files
        if not files:
            return None

        def done(card) -> None:
            self.changed()
            self.models_panel.select(card.id)
            self.front.status(f"Imported {card.id} ({', '.join(card.sources)}); its licence is unknown.", 15000)

        job = self.front.run_task(tasks.import_model(files), "import", on_done=done)
        self.front.raise_dock("Jobs")
        return job

    def remove_model(self, model_id: str) -> None:
        try:
            folder = remove_model(model_id)
        except StemDeskError as error:
            self.front.show_error("Cannot remove the model", words(error))
            return
        self.front.status(f"Removed {model_id} ({folder}).")
        self.changed()

    def changed(self) -> None:
        """The installed models changed: the Models dock and the Model box list them again."""
        self.models_panel.refresh()
        self.refresh_models()

    def check_data(self, folder: str) -> Job:
        trainer = self.trainer
        return self.front.run_task(
            tasks.check_data(Path(folder)), "check", on_done=lambda report: trainer.show_text(report.text)
        )

    def start_training(self, request: dict) -> Job | None:
        trainer = self.trainer
        if not request["data"] or not request["name"]:
            self.front.show_error("Cannot train", "Choose a data folder and a name for the new model.")
            return None

        def done(tuned: tasks.Tuned) -> None:
            trainer.report.setSearchPaths([tuned.folder])  # the card's curves.png
            trainer.show_text(tuned.markdown, markdown=True)

        def ended(job: Job) -> None:
            trainer.running(self.training())  # the book no longer counts the job that ended
            self.changed()

        task = tasks.fine_tune(
            tasks.FineTune(
                Path(request["data"]),
                request["base"],
                request["name"],
                minutes=request["minutes"],
                threads=int(self.settings["threads"]),
            )
        )
        job = self.front.run_task(task, "train", on_done=done, on_end=ended, on_progress=trainer.progress)
        trainer.running(True)
        return job

    def training(self) -> bool:
        """Whether a fine-tuning job is running (queued or working), as the window's job book counts them."""
        return self.job_book.running("train") > 0

    def cancel_training(self) -> None:
        """The Trainer dock's Cancel: the book cancels the running fine-tuning job."""
        self.job_book.cancel("train")
