"""The fast path: reduced precision where a network names harmless parts.

Reduced precision is its own, measured mode; the float32 port keeps its agreement with onnxruntime
(tests/io/test_htdemucs.py). Here: what "auto" chooses and why, that bfloat16 touches only the named parts and
keeps the stems close, and that the choice reaches the certificate and the summary.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import install_small_htdemucs, run, small_estimator, small_htdemucs

from stemdesk.core.precision import apply_precision, choose_precision, reduced_precision_modules
from stemdesk.io.model_store import load_estimator, save_model
from stemdesk.jobs.batch import BatchSettings

CPU = torch.device("cpu")


@pytest.fixture
def installed(tmp_path, monkeypatch) -> str:
    return install_small_htdemucs(tmp_path / "models", monkeypatch)


def sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (reference - estimate).pow(2).sum()))


def test_auto_chooses_bf16_only_on_hardware_that_computes_it_and_for_a_network_that_names_parts():
    network, masks = small_htdemucs(), small_estimator("unet")
    bf16 = ("avx512_bf16",)
    assert choose_precision("auto", CPU, network, bf16) == (
        "bf16",
        "auto: this CPU computes bfloat16 in hardware (avx512_bf16)",
    )
    assert choose_precision("fp32", CPU, network, bf16) == ("fp32", "asked for")
    assert choose_precision("auto", CPU, masks, bf16)[0] == "fp32"  # a mask network names no parts: nothing to reduce
    assert choose_precision("bf16", CPU, masks, bf16)[0] == "fp32"
    chosen, reason = choose_precision("auto", CPU, network, ())
    assert chosen == "fp32" and "no bfloat16 instructions" in reason
    assert choose_precision("bf16", CPU, network) == ("bf16", "asked for")  # forced, even where it is slow
    assert choose_precision("auto", CPU, network, ()) == choose_precision("auto", CPU, network)
    with pytest.raises(ValueError, match="fp16"):
        choose_precision("fp16", CPU, network)


def test_a_roformer_names_its_dense_layers_but_auto_keeps_it_in_float32_until_its_stems_are_measured():
    reference = small_estimator("bs_roformer").eval()
    assert choose_precision("auto", CPU, reference, ("avx512_bf16",)) == (
        "fp32",
        "auto: this model's stems in reduced precision are not measured (--precision bf16 forces it)",
    )
    reduced = apply_precision(small_estimator("bs_roformer").eval(), "bf16")
    assert reduced.layers[0][0].layers[0][0].to_qkv.weight.dtype == torch.bfloat16
    assert reduced.band_split.to_features[0][1].weight.dtype == torch.float32  # the band split stays float32
    audio = torch.randn(1, 2, 8192) * 0.1
    with torch.inference_mode():
        exact, fast = reference(audio), reduced(audio)
    assert not torch.equal(exact, fast) and sdr(exact, fast) > 30


def test_a_split_model_measured_in_bf16_splits_a_stem_so_and_its_children_still_null_and_stay_close(tmp_path):
    # the shipped drum kit's card says its stems with the output layer in bfloat16 were measured (docs/custom-stems.md)
    drums, _ = load_estimator("stemdesk-drumkit")
    assert reduced_precision_modules(drums) == [drums.fc3]
    assert choose_precision("auto", CPU, drums, ("avx512_bf16",))[0] == "bf16"
    assert choose_precision("auto", CPU, drums, ())[0] == "fp32"  # emulated bfloat16 would be slower
    unmeasured = small_estimator("open_unmix")  # any other Open-Unmix network: float32 unless asked
    assert choose_precision("auto", CPU, unmeasured, ("avx512_bf16",))[0] == "fp32"
    rng = np.random.default_rng(5)
    t = np.arange(3 * 44100) / 44100
    hits = np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) * 20) + rng.standard_normal(t.size) * np.exp(-(t % 0.25) * 40)
    stem = tmp_path / "drums.wav"
    sf.write(stem, (np.stack([hits, hits], 1) * 0.3).astype(np.float32), 44100, subtype="PCM_24")
    made = {}
    for asked in ("bf16", "fp32"):
        code, out, err = run("split", stem, "--model", "stemdesk-drumkit", "--precision", asked, "-o", tmp_path / asked)
        assert code == 0, err
        cert = json.loads((tmp_path / asked / "drums" / "stemdesk-certificate.json").read_text())
        assert cert["settings"]["precision"] == asked and cert["null"]["bit_exact"]
        made[asked] = torch.from_numpy(sf.read(tmp_path / asked / "drums" / "kick.wav")[0])
    assert not torch.equal(made["bf16"], made["fp32"])  # it really ran in bfloat16
    assert sdr(made["fp32"], made["bf16"]) > 40


def test_a_model_trained_from_a_measured_one_is_not_measured_itself(tmp_path):
    measured = small_estimator("open_unmix", bf16_measured=True)
    assert measured.reduced_precision_measured
    card = save_model(tmp_path / "mine", "mine", measured, {"description": "trained further"})
    assert "bf16_measured" not in card.config
    assert not load_estimator(card)[0].reduced_precision_measured


def test_bf16_reduces_only_the_named_parts_keeps_names_and_float32_edges_and_the_stems_close():
    reference = small_htdemucs()
    reduced = apply_precision(small_htdemucs(), "bf16")
    assert list(reduced.state_dict()) == list(reference.state_dict())  # a fine-tune's names still fit
    named = {id(p) for m in reduced_precision_modules(reduced) for p in m.parameters()}
    assert named, "HTDemucs names its transformer and the convolutions around it"
    for parameter in reduced.parameters():
        assert parameter.dtype == (torch.bfloat16 if id(parameter) in named else torch.float32)
    assert reduced.crosstransformer.layers[0].linear1.weight.dtype == torch.bfloat16
    assert reduced.encoder[0].conv.weight.dtype == torch.float32  # the encoders, decoders and norms stay float32
    audio = torch.randn(1, 2, 8192) * 0.1
    with torch.inference_mode():
        exact, fast = reference(audio), reduced(audio)
    assert fast.dtype == torch.float32
    assert not torch.equal(exact, fast)  # it really ran in bfloat16
    assert sdr(exact, fast) > 30


def test_the_chosen_precision_reaches_the_certificate_and_the_summary_and_the_stems_null(installed, tmp_path):
    rng = np.random.default_rng(3)
    song = tmp_path / "song.wav"
    sf.write(song, (rng.standard_normal((3 * 22050, 2)) * 0.1).astype(np.float32), 22050, subtype="PCM_24")
    made = {}
    for asked in ("bf16", "fp32"):
        code, out, err = run("separate", song, "--model", installed, "--precision", asked, "-o", tmp_path / asked)
        assert code == 0, err
        assert f"on cpu, {asked})" in out
        cert = json.loads((tmp_path / asked / "song" / "stemdesk-certificate.json").read_text())
        assert cert["settings"]["precision"] == asked and cert["settings"]["precision_reason"] == "asked for"
        assert cert["null"]["bit_exact"]
        made[asked] = sf.read(tmp_path / asked / "song" / "vocals.wav")[0]
    assert not np.array_equal(made["bf16"], made["fp32"])
    assert sdr(torch.from_numpy(made["fp32"]), torch.from_numpy(made["bf16"])) > 30


def test_a_mask_model_runs_in_float32_whatever_is_asked(tmp_path):
    rng = np.random.default_rng(4)
    song = tmp_path / "song.wav"
    sf.write(song, (rng.standard_normal((44100, 2)) * 0.1).astype(np.float32), 44100, subtype="PCM_16")
    code, out, err = run("separate", song, "--model", "tiny-4stem", "--precision", "bf16", "-o", tmp_path / "out")
    assert code == 0, err
    cert = json.loads((tmp_path / "out" / "song" / "stemdesk-certificate.json").read_text())
    assert cert["settings"]["precision"] == "fp32"
    assert "no part" in cert["settings"]["precision_reason"]


def test_an_unknown_precision_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit) as exited:
        run("separate", "song.wav", "--precision", "fp8")
    assert exited.value.code != 0 and "invalid choice: 'fp8'" in capsys.readouterr().err


def test_a_batch_redoes_songs_only_for_a_precision_asked_for():
    auto = BatchSettings(model="tiny-4stem")
    assert "precision" not in auto.key()  # "auto" differs by machine as the device does: earlier results count
    assert BatchSettings(model="tiny-4stem", precision="fp32").key()["precision"] == "fp32"
