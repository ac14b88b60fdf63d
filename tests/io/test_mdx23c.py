"""MDX23C (TFC-TDF v3) checkpoints from Music-Source-Separation-Training (MSST): made here with the reference network
(the copy of MSST's ``mdx23c_tfc_tdf_v3.py`` that the ``audio-separator`` package ships; random weights, small
configurations), saved as MSST saves them with an MSST-style YAML, imported through ``stemdesk models import`` and
compared with the reference on the same chunk; then separated through StemDesk's chunker and ``stemdesk separate``,
and the stems null. Configs StemDesk does not run are refused saying which option; the catalog installs one."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers import assert_stems_null, run

from stemdesk.core.chunker import Chunker
from stemdesk.core.separator import Separator
from stemdesk.io import catalog
from stemdesk.io.model_store import find_model, list_models, load_estimator, user_models_dir

RATE = 44100
CHUNK = 8064  # hop · 63: 64 frames, as MSST's chunk sizes are hop · (dim_t − 1)
AUDIO = dict(chunk_size=CHUNK, dim_f=256, dim_t=64, hop_length=128, n_fft=512, num_channels=2, sample_rate=RATE)
SMALL = dict(
    act="gelu",
    bottleneck_factor=2,
    growth=8,
    norm="InstanceNorm",
    num_blocks_per_scale=1,
    num_channels=8,
    num_scales=2,
    num_subbands=2,
    scale=[2, 2],
)
DRUMS = ["kick", "snare", "toms", "hh", "ride", "crash"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tfc_tdf_v3(monkeypatch):
    """The reference network's module from the installed audio-separator package. Its package imports the whole
    separator (onnxruntime, pydub and more, not installed: it is installed without its requirements), so its
    ``separator`` package is stood in by a bare one pointing at the same folder, and only the network's module and
    the device helper it imports are loaded."""
    spec = importlib.util.find_spec("audio_separator")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(
            "the reference MDX23C is not installed: pip install --no-deps audio-separator==0.47.1 (scripts/setup.sh "
            "--test installs it)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "separator"
    stand_in = types.ModuleType("audio_separator.separator")
    stand_in.__path__ = [str(folder)]
    monkeypatch.setitem(sys.modules, "audio_separator.separator", stand_in)
    for name in [n for n in sys.modules if n.startswith("audio_separator.separator.")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("audio_separator.separator.uvr_lib_v5.tfc_tdf_v3")


def namespace(value):
    """A config as the reference reads it (attributes, like MSST's ConfigDict)."""
    if isinstance(value, dict):
        return types.SimpleNamespace(**{k: namespace(v) for k, v in value.items()})
    return value


def msst_config(model: dict | None = None, instruments=DRUMS, target: str | None = None, **sections) -> dict:
    config = {
        "audio": {**AUDIO, "min_mean_abs": 0.001},
        "model": {**SMALL, **(model or {})},
        "training": {"batch_size": 2, "instruments": list(instruments), "target_instrument": target},
        "inference": {"batch_size": 1, "dim_t": 64, "num_overlap": 4},
    }
    for name, values in sections.items():
        config[name] = {**config[name], **values}
    return config


def write_yaml(path: Path, config: dict) -> Path:
    """Laid out as MSST's configs are (its YAML dump of the sections; null for no target instrument)."""
    lines = []
    for section, values in config.items():
        lines.append(f"{section}:")
        for key, value in values.items():
            if isinstance(value, list):
                lines += [f"  {key}:"] + [f"  - {v}" for v in value]
            elif value is None:
                lines.append(f"  {key}: null")
            else:
                lines.append(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def reference_model(tfc_tdf_v3, config: dict, seed: int = 0) -> torch.nn.Module:
    """The reference network with random weights far from its initialisation (norms' statistics too)."""
    torch.manual_seed(seed)
    model = tfc_tdf_v3.TFC_TDF_net(namespace(config), "cpu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def saved(model: torch.nn.Module, path: Path, wrapped: bool = False) -> Path:
    """As MSST saves a checkpoint: torch.save of the state dict (when resuming: under "state_dict")."""
    torch.save({"state_dict": model.state_dict()} if wrapped else model.state_dict(), path)
    return path


def reference_stems(reference: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """The reference's output as (batch, stems, channels, length): it drops the stems axis for one stem."""
    out = reference(audio)
    return out if out.dim() == 4 else out[:, None]


def import_ok(*argv) -> str:
    code, out, err = run("models", "import", *argv)
    assert code == 0, err
    assert "Imported" in out
    return out


def refused(*argv) -> str:
    before = {card.id for card in list_models()}
    code, out, err = run("models", "import", *argv)
    assert code == 1 and out == ""
    assert {card.id for card in list_models()} == before  # nothing installed
    assert not user_models_dir().exists() or not [p for p in user_models_dir().iterdir() if p.name.startswith(".")]
    return err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- one chunk, against the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, target, wrapped",
    [
        ({}, None, False),  # six drum stems, InstanceNorm (the DrumSep layout), a plain state dict
        ({"norm": "BatchNorm", "act": "relu"}, "vocals", True),  # one target, the rest as residual; "state_dict"
        ({"norm": "GroupNorm4", "act": "elu1.0", "scale": [2, 4], "num_scales": 1}, None, False),
    ],
    ids=["drums-instancenorm", "vocals-batchnorm", "groupnorm-elu"],
)
def test_an_mdx23c_ckpt_with_its_yaml_imports_and_runs_as_the_reference_does(
    tmp_path, tfc_tdf_v3, model, target, wrapped
):
    instruments = ["vocals", "other"] if target else DRUMS
    config = msst_config(model, instruments, target)
    reference = reference_model(tfc_tdf_v3, config)
    ckpt = saved(reference, tmp_path / "model_mdx23c_ep_1_sdr_1.0.ckpt", wrapped)
    yaml = write_yaml(tmp_path / "config_mdx23c.yaml", config)
    import_ok(ckpt, "--config", yaml, "--name", "mdx")
    card = find_model("mdx")
    assert card.estimator == "mdx23c" and card.sources == instruments
    assert "MDX23C" in card.raw["description"] and card.raw["source"]["format"].startswith("mdx23c .ckpt")
    assert card.raw["source"]["files"] == [{"name": ckpt.name, "sha256": sha256(ckpt)}]
    assert card.raw["source"]["configs"] == [{"name": yaml.name, "sha256": sha256(yaml)}]
    assert card.config["residual"] == bool(target) and card.config["segment"] == CHUNK
    ours, _ = load_estimator("mdx")

    torch.manual_seed(3)
    audio = 0.3 * torch.randn(2, 2, CHUNK)
    with torch.inference_mode():
        expected, got = reference_stems(reference, audio), ours(audio)
        difference = (got[:, : expected.shape[1]] - expected).abs().max().item()
        print(
            f"MDX23C {'-'.join(map(str, model.values())) or 'drumsep'}: max |StemDesk − reference| = {difference:.2e}"
        )
        assert difference < 1e-5 * expected.abs().max().item() + 1e-6
        if target:
            assert torch.allclose(got.sum(dim=1), audio, atol=1e-6)  # other = the mix minus the vocals
        # a short last chunk is padded to the training length as MSST pads it: by reflection when longer than
        # half of it, with zeros otherwise
        for length, mode in ((CHUNK * 3 // 4, "reflect"), (CHUNK // 3, "constant")):
            short = audio[..., :length]
            padded = torch.nn.functional.pad(short, (0, CHUNK - length), mode=mode)
            expected = reference_stems(reference, padded)[..., :length]
            difference = (ours(short)[:, : expected.shape[1]] - expected).abs().max().item()
            assert difference < 1e-5 * expected.abs().max().item() + 1e-6


# --- whole songs ---------------------------------------------------------------------------------------------------


def msst_demix(network, mix: torch.Tensor, chunk: int, num_overlap: int) -> torch.Tensor:
    """MSST's generic overlap (utils/model_utils.py ``demix``): the song padded by reflection by chunk − step at
    both ends, chunks every chunk / num_overlap samples, each weighted by linear fades of chunk / 10 at both ends
    (none before the first chunk and after the last), the sum divided by the summed weights.
    mix (channels, length) → (stems, channels, length)."""
    step, fade = chunk // num_overlap, chunk // 10
    border, length = chunk - step, mix.shape[-1]
    padded = length > 2 * border and border > 0
    if padded:
        mix = torch.nn.functional.pad(mix[None], (border, border), mode="reflect")[0]
    weights = torch.ones(chunk)
    weights[:fade], weights[-fade:] = torch.linspace(0, 1, fade), torch.linspace(1, 0, fade)
    result = counter = None
    start = 0
    while start < mix.shape[-1]:
        part = mix[:, start : start + chunk]
        n = part.shape[-1]
        mode = "reflect" if n > chunk // 2 else "constant"
        out = network(torch.nn.functional.pad(part[None], (0, chunk - n), mode=mode))[0]
        if result is None or counter is None:
            result, counter = torch.zeros(out.shape[0], *mix.shape), torch.zeros(out.shape[0], *mix.shape)
        window = weights.clone()
        if start == 0:
            window[:fade] = 1
        if start + step >= mix.shape[-1]:
            window[-fade:] = 1
        result[..., start : start + n] += out[..., :n] * window[:n]
        counter[..., start : start + n] += window[:n]
        start += step
    assert result is not None and counter is not None
    out = result / counter
    return out[..., border:-border] if padded else out


def test_a_song_through_the_chunker_and_stemdesk_separate_nulls(tmp_path, tfc_tdf_v3, song_file):
    config = msst_config({}, ["vocals", "other"], "vocals")
    reference = reference_model(tfc_tdf_v3, config, seed=1)
    write_yaml(tmp_path / "vocals.yaml", config)
    import_ok(saved(reference, tmp_path / "vocals.ckpt"), "--config", tmp_path / "vocals.yaml")
    ours, _ = load_estimator("vocals")

    # In memory, several segments: StemDesk's chunker (a quarter overlap, triangular weights) over its port equals
    # the same chunker over the reference network. The vocal model's stems sum to the mix, so the null rule moves
    # nothing.
    torch.manual_seed(4)
    audio = 0.3 * torch.randn(2, 5 * CHUNK + 1234)
    separator = Separator(ours)

    def reference_chunk(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        padded = torch.nn.functional.pad(x[None], (0, CHUNK - n), mode="reflect" if n > CHUNK // 2 else "constant")
        vocals = reference_stems(reference, padded)[0, :, :, :n]
        return torch.cat([vocals, x[None] - vocals])

    with torch.inference_mode():
        got = separator(audio, RATE).stems
        expected = Chunker(reference_chunk, **separator.chunking(RATE, 20.0, 0.0)).run(audio)
        difference = (got - expected).abs().max().item()
        print(f"MDX23C through StemDesk's chunker: max |StemDesk − reference| = {difference:.2e}")
        assert difference < 1e-5
        assert torch.allclose(got.sum(dim=0), audio, atol=1e-6)
        # MSST's own overlap (num_overlap chunks over each sample, faded edges) differs where segments meet, as
        # much as MSST's own num_overlap 2 and 4 differ from each other on these random weights: measured, for
        # docs/importing-models.md
        network = lambda x: reference_stems(reference, x)  # noqa: E731
        msst, msst_2 = msst_demix(network, audio, CHUNK, 4), msst_demix(network, audio, CHUNK, 2)
        print(
            f"MDX23C vocals, peak {msst[0].abs().max().item():.2f}: max |StemDesk − MSST demix (num_overlap 4)| = "
            f"{(got[0] - msst[0]).abs().max().item():.2e}, max |MSST num_overlap 2 − 4| = "
            f"{(msst_2[0] - msst[0]).abs().max().item():.2e}"
        )

    song = song_file(seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "vocals", "--bit-depth", "24")
    assert code == 0, err
    assert_stems_null(song, sorted((tmp_path / "stems" / song.stem).glob("*.wav")), "24")


def test_a_drum_separation_model_separates_and_nulls(tmp_path, tfc_tdf_v3, song_file):
    config = msst_config()
    reference = reference_model(tfc_tdf_v3, config, seed=2)
    write_yaml(tmp_path / "drumsep.yaml", config)
    import_ok(saved(reference, tmp_path / "drumsep.ckpt", wrapped=True), tmp_path / "drumsep.yaml")
    assert find_model("drumsep").sources == DRUMS
    song = song_file(seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "drumsep", "--bit-depth", "16")
    assert code == 0, err
    stems = sorted((tmp_path / "stems" / song.stem).glob("*.wav"))
    assert sorted(p.stem for p in stems) == sorted(DRUMS)
    assert_stems_null(song, stems, "16")


# --- refusals ------------------------------------------------------------------------------------------------------


def test_options_stemdesk_does_not_run_are_refused_by_name(tmp_path, tfc_tdf_v3):
    config = msst_config()
    ckpt = saved(reference_model(tfc_tdf_v3, config), tmp_path / "mdx.ckpt")

    err = refused(ckpt)
    assert "MDX23C checkpoint" in err and "YAML config" in err and "--config" in err

    incomplete = msst_config()
    del incomplete["model"]["growth"]
    cases = {
        "mono": (msst_config(audio={"num_channels": 1}), "audio.num_channels=1, which StemDesk does not run"),
        "act": (msst_config({"act": "swish"}), "act 'swish' is not gelu, relu or elu"),
        "groups": (msst_config({"norm": "GroupNorm"}), "norm 'GroupNorm' is not GroupNorm followed by"),
        "frames": (msst_config(audio={"chunk_size": CHUNK + 128}), "do not divide the 65 frames"),
        "incomplete": (incomplete, "not a complete MDX23C config (no model.growth)"),
    }
    for name, (bad, expected) in cases.items():
        err = refused(ckpt, "--config", write_yaml(tmp_path / f"{name}.yaml", bad))
        assert expected in err and "Nothing was installed" in err, err

    wider = write_yaml(tmp_path / "wider.yaml", msst_config({"growth": 16}))
    err = refused(ckpt, "--config", wider)
    assert "does not fit the MDX23C" in err and "wider.yaml" in err

    roformer = tmp_path / "roformer.yaml"
    roformer.write_text(
        "model:\n  dim: 16\n  depth: 1\n  freqs_per_bands: [1, 256]\ntraining:\n  instruments: [a, b]\n"
    )
    err = refused(ckpt, "--config", roformer)
    assert "does not describe an MDX23C" in err


# --- the catalog ---------------------------------------------------------------------------------------------------


def test_the_catalog_installs_an_mdx23c_from_its_config(tmp_path, tfc_tdf_v3, monkeypatch):
    """An entry like the shipped mdx23c-drumsep, with its config's text: installed from a file fetched by hand (the
    download itself is tested in test_catalog.py), checked and imported from the entry's own config."""
    config = msst_config()
    text = write_yaml(tmp_path / "drumsep.yaml", config).read_text()
    ckpt = saved(reference_model(tfc_tdf_v3, config), tmp_path / "drumsep.ckpt")
    entry = {
        "id": "tiny-drumsep",
        "name": "Tiny drum separation",
        "summary": "An MDX23C with random weights.",
        "stems": DRUMS,
        "architecture": "mdx23c",
        "cannot_run": None,
        "config": {"file": "drumsep.yaml", "url": "http://127.0.0.1:9/drumsep.yaml", "content": text, "source": "t"},
        "files": [{"file": "drumsep.ckpt", "url": "http://127.0.0.1:9/drumsep.ckpt", "source": "a test"}],
        "checksum": "recorded at first install",
        "licence": "CC0 (the tests')",
        "licence_source": "http://127.0.0.1/licence",
        "training_data": "none: random weights",
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"schema": 1, "models": [entry]}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    assert catalog.load_catalog()["tiny-drumsep"].runs

    code, _, err = run("models", "install", "tiny-drumsep", "--accept-license", "--file", ckpt)
    assert code == 0, err
    card = find_model("tiny-drumsep")
    assert card.estimator == "mdx23c" and card.sources == DRUMS
    assert card.raw["source"]["files"][0]["sha256"] == sha256(ckpt)

    # a config the importer refuses is refused before the weights are looked at
    entry["id"], entry["config"]["content"] = (
        "mono-drumsep",
        write_yaml(tmp_path / "mono.yaml", msst_config(audio={"num_channels": 1})).read_text(),
    )
    path.write_text(json.dumps({"schema": 1, "models": [entry]}))
    code, _, err = run("models", "install", "mono-drumsep", "--accept-license", "--file", tmp_path / "absent.ckpt")
    assert code == 1 and "audio.num_channels=1" in err

    monkeypatch.delenv(catalog.CATALOG_ENV)
    assert catalog.load_catalog()["mdx23c-drumsep"].runs  # the shipped entry
