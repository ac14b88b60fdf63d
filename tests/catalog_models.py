"""Tiny stand-ins for the catalog's community models, made as their publishers make them and installed through the
real install path (`stemdesk models install ID --file`, from a test catalog named by STEMDESK_CATALOG): a Mel-RoFormer
karaoke model and a de-reverb (the reference ``bs_roformer`` package's network, random weights, saved as
Music-Source-Separation-Training saves it, with its YAML), an MDX23C drum separation (StemDesk's port, which keeps
the reference's parameter names, random weights saved the same way) and an HTDemucs of six sources (the ``demucs``
package's network serialised and named with its checksum, as Demucs publishes). Each catalog entry says how the model
applies to a stem (``applies_to``, ``removes``) as the shipped catalog does."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import run

RATE = 44100
CHUNK = 8192
ROFORMER = dict(
    dim=16,
    depth=1,
    stereo=True,
    num_stems=1,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    dim_head=8,
    heads=2,
    stft_n_fft=512,
    stft_hop_length=128,
    stft_win_length=512,
    mask_estimator_depth=1,
    num_bands=12,
    sample_rate=RATE,
)
MDX_AUDIO = dict(chunk_size=8064, dim_f=256, dim_t=64, hop_length=128, n_fft=512, num_channels=2, sample_rate=RATE)
MDX_MODEL = dict(
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
KIT = ["kick", "snare", "toms", "hh", "ride", "crash"]
SIX = ["drums", "bass", "other", "vocals", "guitar", "piano"]

# The shipped catalog's ways of applying its models, for the stand-ins of the same names
KARAOKE = {"vocals": {"lead": "other", "backing": "karaoke"}}
DEREVERB = {"vocals": {"dry": "noreverb", "reverb": "reverb"}}
DRUMSEP = {"drums": {piece: piece for piece in KIT}}


def yaml_text(sections: dict[str, dict[str, Any]]) -> str:
    """A config laid out as MSST's (its YAML dump of the sections, tuples as !!python/tuple, null for none)."""
    lines = []
    for section, values in sections.items():
        lines.append(f"{section}:")
        for key, value in values.items():
            if isinstance(value, tuple):
                lines += [f"  {key}: !!python/tuple"] + [f"  - {v}" for v in value]
            elif isinstance(value, list):
                lines += [f"  {key}:"] + [f"  - {v}" for v in value]
            elif value is None:
                lines.append(f"  {key}: null")
            else:
                lines.append(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"


def mel_roformer(folder: Path, name: str, instruments: list[str], seed: int = 0) -> tuple[Path, str]:
    """A Mel-RoFormer of one target instrument (the first) and the rest: (its .ckpt, its YAML's text)."""
    pytest.importorskip("bs_roformer")
    pytest.importorskip("librosa")  # the package imports it for its mel filters
    from bs_roformer.mel_band_roformer import MelBandRoformer

    torch.manual_seed(seed)
    network = MelBandRoformer(linear_transformer_depth=0, **ROFORMER).eval()
    ckpt = folder / f"{name}.ckpt"
    torch.save(network.state_dict(), ckpt)  # as MSST saves its checkpoints
    text = yaml_text(
        {
            "audio": {"chunk_size": CHUNK, "num_channels": 2, "sample_rate": RATE},
            "model": ROFORMER,
            "training": {"instruments": instruments, "target_instrument": instruments[0]},
            "inference": {"num_overlap": 2},
        }
    )
    return ckpt, text


def mdx23c_drumsep(folder: Path, seed: int = 0) -> tuple[Path, str]:
    """An MDX23C of the six kit pieces (DrumSep's layout): (its .ckpt, its YAML's text)."""
    from stemdesk.core.estimators.mdx23c import MDX23C
    from stemdesk.io.model_import import mdx23c_settings

    sections = {
        "audio": {**MDX_AUDIO, "min_mean_abs": 0.001},
        "model": MDX_MODEL,
        "training": {"batch_size": 2, "instruments": KIT, "target_instrument": None},
        "inference": {"batch_size": 1, "dim_t": 64, "num_overlap": 4},
    }
    text = yaml_text(sections)
    config = folder / "drumsep.yaml"
    config.write_text(text)
    from stemdesk.io.model_import import read_config

    torch.manual_seed(seed)
    network = MDX23C(**mdx23c_settings(read_config(config), config)[0]).eval()
    with torch.no_grad():  # far from its initialisation, so the pieces differ
        for parameter in network.parameters():
            parameter.normal_(0, 0.3)
    ckpt = folder / "drumsep.ckpt"
    torch.save(network.state_dict(), ckpt)
    return ckpt, text


def htdemucs_six(folder: Path, seed: int = 0) -> Path:
    """An HTDemucs of six sources serialised by demucs.states and saved with its checksum in the name."""
    pytest.importorskip("omegaconf")
    pytest.importorskip("demucs")
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    model = HTDemucs(
        sources=SIX,
        segment=Fraction(8192, RATE),
        channels=8,
        depth=3,
        nfft=2048,
        bottom_channels=16,
        t_layers=2,
        t_heads=2,
        dconv_mode=3,
    )
    save_with_checksum(serialize_model(model, OmegaConf.create({"epochs": 1})), folder / "six.th")
    return next(folder.glob("six-*.th"))


def entry(
    model_id: str,
    architecture: str,
    file: Path,
    stems: list[str] | None,
    config: str | None = None,
    applies_to: dict | None = None,
    removes: str | None = None,
) -> dict[str, Any]:
    """A catalog entry for a stand-in, laid out as the shipped catalog's."""
    made: dict[str, Any] = {
        "id": model_id,
        "name": f"Tiny {model_id}",
        "summary": "A tiny model with random weights.",
        "stems": stems,
        "architecture": architecture,
        "cannot_run": None,
        "publisher": {"name": "the tests", "page": "http://127.0.0.1/"},
        "config": (
            {"file": f"{model_id}.yaml", "url": f"http://127.0.0.1:9/{model_id}.yaml", "content": config, "source": "t"}
            if config is not None
            else None
        ),
        "files": [{"file": file.name, "url": f"http://127.0.0.1:9/{file.name}", "source": "a test"}],
        "checksum": "recorded at first install",
        "licence": "CC0 (the tests')",
        "licence_source": "http://127.0.0.1/licence",
        "training_data": "none: random weights",
        "quality": [],
        "speed": None,
    }
    if applies_to is not None:
        made["applies_to"] = applies_to
    if removes is not None:
        made["removes"] = removes
    return made


def write_catalog(path: Path, entries: list[dict[str, Any]], monkeypatch) -> Path:
    path.write_text(json.dumps({"schema": 1, "models": entries}))
    monkeypatch.setenv("STEMDESK_CATALOG", str(path))
    return path


def install(model_id: str, file: Path | None = None) -> tuple[int, str, str]:
    """`stemdesk models install ID --accept-license [--file FILE]`, as a user runs it."""
    return run("models", "install", model_id, "--accept-license", *(["--file", file] if file else []))


def community_models(folder: Path, monkeypatch, which=("karaoke", "dereverb", "drumsep", "six")) -> dict[str, str]:
    """The stand-ins installed from a test catalog: {"karaoke": its id, ...}."""
    made: dict[str, tuple[dict[str, Any], Path]] = {}
    if "karaoke" in which:
        ckpt, text = mel_roformer(folder, "karaoke", ["karaoke", "other"], seed=1)
        made["karaoke"] = entry("tiny-karaoke", "mel_band_roformer", ckpt, ["karaoke", "other"], text, KARAOKE), ckpt
    if "dereverb" in which:
        ckpt, text = mel_roformer(folder, "dereverb", ["noreverb", "reverb"], seed=2)
        made["dereverb"] = (
            entry("tiny-dereverb", "mel_band_roformer", ckpt, None, text, DEREVERB, removes="reverb"),
            ckpt,
        )
    if "drumsep" in which:
        ckpt, text = mdx23c_drumsep(folder, seed=3)
        made["drumsep"] = entry("tiny-drumsep", "mdx23c", ckpt, KIT, text, DRUMSEP), ckpt
    if "six" in which:
        th = htdemucs_six(folder, seed=4)
        made["six"] = entry("tiny-htdemucs-6s", "htdemucs", th, SIX), th
    write_catalog(folder / "catalog.json", [e for e, _ in made.values()], monkeypatch)
    for made_entry, file in made.values():
        code, _, err = install(made_entry["id"], file)
        assert code == 0, err
    return {key: made_entry["id"] for key, (made_entry, _) in made.items()}
