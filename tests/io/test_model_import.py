"""`stemdesk models import`: producers' own checkpoints, made here with the reference packages (demucs, openunmix,
BS-RoFormer; random weights, small configurations) and saved the way those tools save them, imported through the
command line, and compared with the reference networks on the same input; then separated, and the stems null.
Files that are not model weights, or that would run code, are refused with a message saying what to do."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import sys
import types
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from helpers import assert_stems_null, run

from stemdesk.core.separator import Separator
from stemdesk.io.model_store import find_model, list_models, load_estimator, user_models_dir

RATE = 44100


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def installed_ids() -> set[str]:
    return {card.id for card in list_models()}


def import_ok(*argv) -> str:
    code, out, err = run("models", "import", *argv)
    assert code == 0, err
    assert "Imported" in out
    return out


def refused(*argv) -> str:
    before = installed_ids()
    code, out, err = run("models", "import", *argv)
    assert code == 1 and out == ""
    assert installed_ids() == before  # nothing installed
    assert not user_models_dir().exists() or not [p for p in user_models_dir().iterdir() if p.name.startswith(".")]
    return err


def randomise_norms(model: torch.nn.Module) -> None:
    """Batch-norm statistics away from 0/1 and layer scales up, so that a random network is far from linear."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".scale"):
                parameter.fill_(0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.3)
                module.bias.normal_(0, 0.3)


# --- Demucs .th ----------------------------------------------------------------------------------------------------

DEMUCS_SMALL = dict(channels=8, depth=3, nfft=2048, bottom_channels=16, t_layers=2, t_heads=2, dconv_mode=3)


def demucs_th(folder: Path, seed: int = 0, **overrides) -> Path:
    """An HTDemucs serialised by demucs.states (float16 state, as its trainer exports) and saved with its checksum
    in the name, as Demucs publishes models."""
    pytest.importorskip("omegaconf")
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    config = {**DEMUCS_SMALL, **overrides}
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(8192, RATE), **config)
    randomise_norms(model)
    package = serialize_model(model, OmegaConf.create({"epochs": 1}))
    save_with_checksum(package, folder / "htdemucs.th")
    return next(folder.glob("htdemucs-*.th"))


def test_a_demucs_th_imports_runs_as_the_reference_does_and_nulls(tmp_path, song_file):
    pytest.importorskip("demucs")
    from demucs.states import load_model

    path = demucs_th(tmp_path)
    out = import_ok(path, "--name", "my-htdemucs")
    assert "--model my-htdemucs" in out and "licence is unknown" in out
    card = find_model("my-htdemucs")
    assert card.estimator == "htdemucs" and card.sources == ["drums", "bass", "other", "vocals"]
    assert card.raw["source"]["files"][0]["name"] == path.name
    assert card.raw["source"]["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "as provided by the user" in card.raw["licenses"]["weights"]

    reference = load_model(path).eval()  # the reference's own loader, on the very file imported
    ours, _ = load_estimator("my-htdemucs")
    torch.manual_seed(1)
    audio = 0.3 * torch.randn(2, 2, 8192)
    with torch.inference_mode():
        for length in (8192, 5000):  # a whole segment, and a short last one (both pad to the training length)
            expected, got = reference(audio[..., :length]), ours(audio[..., :length])
            difference = (expected - got).abs().max().item()
            print(f"HTDemucs, {length} samples: max |StemDesk − demucs| = {difference:.2e}")
            assert difference < 1e-5 * expected.abs().max().item() + 1e-6

    song = song_file(seconds=1.5)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "my-htdemucs", "--bit-depth", "16")
    assert code == 0, err
    stems = sorted((tmp_path / "stems" / song.stem).glob("*.wav"))
    assert [p.stem for p in stems] == sorted(card.sources)
    assert_stems_null(song, stems, "16")


# --- Open-Unmix .pth -----------------------------------------------------------------------------------------------


@pytest.fixture
def openunmix(monkeypatch):
    """The openunmix package's model module. It imports torchaudio for audio back ends these tests do not use,
    and torchaudio has no build for StemDesk's torch: a stand-in module takes its place."""
    monkeypatch.setitem(sys.modules, "torchaudio", sys.modules.get("torchaudio") or types.ModuleType("torchaudio"))
    return pytest.importorskip("openunmix.model")


UMX_SMALL = dict(nb_bins=513, nb_channels=2, hidden_size=16, nb_layers=2, max_bin=300)


def umx_files(openunmix, folder: Path, targets=("vocals", "drums", "bass", "other")) -> dict[str, torch.nn.Module]:
    """One state dict per target, saved with torch.save as Open-Unmix's trainer does, named as torch hub names
    them (<target>-<sha256 prefix>.pth), with the separator.json Open-Unmix writes beside them."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for index, target in enumerate(targets):
        torch.manual_seed(10 + index)
        model = openunmix.OpenUnmix(**UMX_SMALL).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0, 0.3)
            # gains around one: where every target's estimate is zero Open-Unmix's softmask gives silence and
            # StemDesk's masks split the bin evenly (the null rule), and random weights would make many such bins
            model.output_scale.uniform_(0.05, 0.3)
            model.output_mean.uniform_(0.5, 1.5)
        randomise_norms(model)
        torch.save(model.state_dict(), folder / f"{target}-{index:08x}.pth")
        models[target] = model
    settings = {"targets": list(targets), "sample_rate": RATE, "nfft": 1024, "nhop": 256, "nb_channels": 2}
    (folder / "separator.json").write_text(json.dumps(settings))
    return models


def test_open_unmix_pth_files_import_run_as_the_reference_does_and_null(tmp_path, openunmix, song_file, monkeypatch):
    folder = tmp_path / "umx-mine"
    models = umx_files(openunmix, folder)
    files = sorted(folder.glob("*.pth"))
    import_ok(*files)  # named after their folder
    card = find_model("umx-mine")
    assert card.estimator == "umx" and sorted(card.sources) == sorted(models)
    assert card.config["stft"]["n_fft"] == 1024 and card.config["stft"]["hop"] == 256
    assert len(card.raw["source"]["files"]) == 4
    ours, _ = load_estimator("umx-mine")

    # The networks: each target's magnitude estimate, exactly.
    torch.manual_seed(2)
    mag = torch.rand(2, 2, 513, 30)
    with torch.inference_mode():
        expected = torch.stack([models[name](mag.clone()) for name in ours.sources], dim=1)
        difference = (ours(mag) - expected).abs().max().item()
    print(f"Open-Unmix networks: max |StemDesk − openunmix| = {difference:.2e}")
    assert difference < 1e-5

    # The separation: Open-Unmix's Separator with softmask and no Wiener step is the ratio of the estimates. Its
    # STFT pads the ends by reflection and StemDesk's with zeros; the LSTMs carry that difference into every
    # frame, so the reference runs here with zero padding.
    reference = openunmix.Separator(
        {name: models[name] for name in ours.sources}, niter=0, softmask=True, n_fft=1024, n_hop=256
    ).eval()
    audio = 0.3 * torch.randn(2, RATE // 2)
    stft = torch.stft
    with torch.inference_mode(), monkeypatch.context() as patch:
        patch.setattr(torch, "stft", lambda *args, **kwargs: stft(*args, **{**kwargs, "pad_mode": "constant"}))
        expected = reference(audio[None])[0]
    with torch.inference_mode():
        got = Separator(ours)(audio, RATE).stems
    difference = (expected - got).abs().max().item()
    print(f"Open-Unmix separation: max |StemDesk − openunmix| = {difference:.2e}")
    assert difference < 1e-5

    song = song_file(seconds=1.5)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "umx-mine", "--bit-depth", "24")
    assert code == 0, err
    assert_stems_null(song, sorted((tmp_path / "stems" / song.stem).glob("*.wav")), "24")


def test_one_open_unmix_target_gets_the_rest_as_a_residual(tmp_path, openunmix, song_file):
    folder = tmp_path / "voice"
    umx_files(openunmix, folder, targets=("vocals",))
    (folder / "separator.json").unlink()  # no settings: Open-Unmix's STFT is assumed from the bins
    import_ok(next(folder.glob("*.pth")), "--name", "umx-vocals")
    card = find_model("umx-vocals")
    assert card.sources == ["vocals", "accompaniment"] and card.config["stft"]["n_fft"] == 1024
    assert card.raw["import_notes"]
    song = song_file(seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "umx-vocals", "--bit-depth", "16")
    assert code == 0, err
    assert_stems_null(song, sorted((tmp_path / "stems" / song.stem).glob("*.wav")), "16")


# --- BS-RoFormer / Mel-RoFormer .ckpt + YAML -----------------------------------------------------------------------

ROFORMER_SMALL = dict(
    dim=16,
    depth=2,
    stereo=True,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    dim_head=8,
    heads=2,
    stft_n_fft=512,
    stft_hop_length=128,
    stft_win_length=512,
    mask_estimator_depth=2,
)
BANDS = (2, 2, 2, 2, 4, 4, 8, 8, 16, 32, 177)
CHUNK = 8192


def msst_yaml(path: Path, model: dict, instruments: list[str], target: str | None) -> Path:
    """A config laid out as Music-Source-Separation-Training's, with its !!python/tuple tags."""
    lines = ["audio:", f"  chunk_size: {CHUNK}", "  num_channels: 2", f"  sample_rate: {RATE}", "model:"]
    for key, value in model.items():
        if isinstance(value, tuple):
            lines += [f"  {key}: !!python/tuple"] + [f"  - {v}" for v in value]
        else:
            lines.append(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}")
    lines += ["training:", "  instruments:"] + [f"  - {i}" for i in instruments]
    lines += [f"  target_instrument: {target or 'null'}", "inference:", "  num_overlap: 4"]
    path.write_text("\n".join(lines) + "\n")
    return path


def roformer_reference(mel: bool, stems: int, seed: int = 0):
    pytest.importorskip("bs_roformer")
    pytest.importorskip("librosa")  # the package imports it for its mel filters
    from bs_roformer.bs_roformer import BSRoformer
    from bs_roformer.mel_band_roformer import MelBandRoformer

    torch.manual_seed(seed)
    if mel:
        config = {**ROFORMER_SMALL, "num_stems": stems, "num_bands": 12, "sample_rate": RATE}
        return MelBandRoformer(linear_transformer_depth=0, **config).eval(), config
    config = {**ROFORMER_SMALL, "num_stems": stems, "freqs_per_bands": BANDS}
    return BSRoformer(**config).eval(), config


def msst_forward(reference, audio: torch.Tensor, monkeypatch) -> torch.Tensor:
    """The reference network as MSST runs it: its copy of the network also zeroes the DC bin before the iSTFT
    (``zero_dc``, on by default) and asks the iSTFT for the input's length; nothing else differs."""
    istft = torch.istft

    def zero_dc_istft(spec, *args, **kwargs):
        kwargs["length"] = audio.shape[-1]
        return istft(spec.index_fill(1, torch.tensor(0), 0.0), *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "istft", zero_dc_istft)
        out = reference(audio)
    return out if out.dim() == 4 else out[:, None]


@pytest.mark.parametrize("mel", [False, True], ids=["bs-roformer", "mel-roformer"])
def test_a_roformer_ckpt_with_its_yaml_imports_and_runs_as_the_reference_does(tmp_path, mel, monkeypatch):
    reference, config = roformer_reference(mel, stems=1)
    ckpt = tmp_path / f"model_{'mel_band' if mel else 'bs'}_roformer_ep_1_sdr_1.0.ckpt"
    torch.save(reference.state_dict(), ckpt)  # as MSST saves its checkpoints
    yaml = msst_yaml(tmp_path / "config.yaml", config, ["vocals", "other"], "vocals")
    import_ok(ckpt, "--config", yaml, "--name", "roformer")
    card = find_model("roformer")
    assert card.estimator == ("mel_band_roformer" if mel else "bs_roformer")
    assert card.sources == ["vocals", "other"] and card.raw["source"]["configs"][0]["name"] == "config.yaml"
    ours, _ = load_estimator("roformer")
    torch.manual_seed(3)
    audio = 0.3 * torch.randn(2, 2, CHUNK)
    with torch.inference_mode():
        expected = msst_forward(reference, audio, monkeypatch)
        got = ours(audio)
        difference = (got[:, :1] - expected).abs().max().item()
        print(f"{'Mel' if mel else 'BS'}-RoFormer: max |StemDesk − bs_roformer| = {difference:.2e}")
        assert difference < 1e-5 * expected.abs().max().item() + 1e-6
        assert torch.allclose(got.sum(dim=1), audio, atol=1e-6)  # other = the mix minus the vocals
        # a short last segment is padded to the training length, by reflection as MSST pads it
        short = audio[..., : CHUNK * 3 // 4]
        padded = torch.nn.functional.pad(short, (0, CHUNK - short.shape[-1]), mode="reflect")
        expected = msst_forward(reference, padded, monkeypatch)[..., : short.shape[-1]]
        assert (ours(short)[:, :1] - expected).abs().max().item() < 1e-5 * expected.abs().max().item() + 1e-6


def test_a_multi_stem_roformer_separates_and_nulls(tmp_path, song_file):
    reference, config = roformer_reference(mel=False, stems=4)
    ckpt = tmp_path / "four.ckpt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, ckpt)  # wrapped
    names = ["vocals", "drums", "bass", "other"]
    yaml = msst_yaml(tmp_path / "four.yaml", config, names, None)
    import_ok(ckpt, yaml)  # the config chosen with it, as the app's file dialog passes it
    card = find_model("four")
    assert card.sources == names and not card.config["residual"]
    song = song_file(seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "four", "--bit-depth", "16")
    assert code == 0, err
    assert_stems_null(song, sorted((tmp_path / "stems" / song.stem).glob("*.wav")), "16")


# --- refusals ------------------------------------------------------------------------------------------------------


class RunsAProgram:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class BuildsADemucs:
    """A checkpoint that would construct (run the constructor of) a class it may only name."""

    def __reduce__(self):
        from demucs.htdemucs import HTDemucs

        return (HTDemucs, (["a", "b"],))


def test_a_demucs_class_is_only_named_never_constructed(tmp_path):
    from demucs.htdemucs import HTDemucs

    path = tmp_path / "builds.th"
    torch.save({"klass": HTDemucs, "args": (), "kwargs": {}, "state": {"x": BuildsADemucs()}}, path)
    err = refused(path)
    assert "Refused" in err and "demucs.htdemucs.HTDemucs" in err


@pytest.mark.parametrize("layout", ["torch.save", "pickle", "inside a demucs package"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, layout):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.th"
    payload = RunsAProgram(marker)
    if layout == "torch.save":
        torch.save({"fc1.weight": torch.ones(2), "hook": payload}, path)
    elif layout == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        from demucs.htdemucs import HTDemucs

        torch.save({"klass": HTDemucs, "args": (), "kwargs": {"segment": payload}, "state": {}}, path)
    err = refused(path)
    assert not marker.exists()
    assert "Refused" in err and "system" in err and "Nothing from it was run" in err


def test_damaged_and_foreign_files_are_refused_saying_what_to_do(tmp_path):
    whole = demucs_th(tmp_path)
    truncated = tmp_path / "truncated.th"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    err = refused(truncated)
    assert "incomplete or damaged" in err and "Download it again" in err

    legacy = tmp_path / "legacy.pth"  # the pre-zip layout Open-Unmix's first models used, cut short
    buffer = io.BytesIO()
    torch.save({"fc1.weight": torch.ones(1000)}, buffer, _use_new_zipfile_serialization=False)
    legacy.write_bytes(buffer.getvalue()[:-100])
    assert "incomplete or damaged" in refused(legacy)

    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(b"\x13" + random.Random(0).randbytes(4095))
    err = refused(noise)
    assert "not a PyTorch checkpoint" in err and "Demucs/HTDemucs .th" in err

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "empty" in refused(empty)

    other_weights = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.ones(3, 3)}, other_weights)
    assert "does not recognise" in refused(other_weights)


def test_a_demucs_th_of_another_class_is_refused_by_name(tmp_path):
    pytest.importorskip("demucs")
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs

    for klass, expected in ((HDemucs, "demucs.hdemucs.HDemucs"), (Demucs, "demucs.demucs.Demucs")):
        path = tmp_path / f"{klass.__name__}.th"
        torch.save({"klass": klass, "args": (), "kwargs": {"sources": ["a", "b"]}, "state": {}}, path)
        err = refused(path)
        assert expected in err and "HTDemucs (v4) only" in err

    (tmp_path / "cross").mkdir()
    err = refused(demucs_th(tmp_path / "cross", t_cross_first=True))
    assert "t_cross_first=True" in err and "does not implement" in err


def test_a_roformer_ckpt_without_its_yaml_is_refused_saying_which_file_is_needed(tmp_path):
    reference, config = roformer_reference(mel=False, stems=1)
    ckpt = tmp_path / "model_bs_roformer.ckpt"
    torch.save(reference.state_dict(), ckpt)
    err = refused(ckpt)
    assert "YAML config" in err and "--config" in err
    # and a config for another network: the weights do not fit it
    wrong = msst_yaml(tmp_path / "wrong.yaml", {**config, "dim": 32}, ["vocals", "other"], "vocals")
    err = refused(ckpt, "--config", wrong)
    assert "does not fit" in err and "wrong.yaml" in err


def test_an_imported_name_is_not_reused(tmp_path):
    reference, config = roformer_reference(mel=False, stems=1)
    ckpt = tmp_path / "v.ckpt"
    torch.save(reference.state_dict(), ckpt)
    yaml = msst_yaml(tmp_path / "v.yaml", config, ["vocals", "other"], "vocals")
    import_ok(ckpt, "--config", yaml)
    assert "already installed" in refused(ckpt, "--config", yaml)
    assert "stemdesk-4stem" in installed_ids()
    assert "already installed" in refused(ckpt, "--config", yaml, "--name", "stemdesk-4stem")
    assert "not a usable model name" in refused(ckpt, "--config", yaml, "--name", "../x")
    code, out, _ = run("models")
    assert code == 0 and "v: bs_roformer" in out
    code, out, _ = run("models", "remove", "v")
    assert code == 0 and "v" not in installed_ids()
