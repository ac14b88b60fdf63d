"""Each shipped catalog entry's network at its published size, against its publisher's code (run in a child process
by tests/io/test_catalog_networks.py, so that a 228-million-parameter network's memory is not the test process's).

    python tests/catalog_networks.py ID [ID ...]    → one JSON line per entry: its largest difference

For an entry, the publisher's network is built from the catalog's own config with random weights (the RoFormers
from the ``bs_roformer`` package MSST's configs are written for, MDX23C from MSST's TFC-TDF v3 as audio-separator
0.47.1 carries it, HTDemucs from the ``demucs`` package with htdemucs's settings and the entry's stems), saved as
its publisher saves it (MSST: ``torch.save`` of the state dict; Demucs: serialised in float16, named with its
checksum, a bag with its YAML, and the reference loaded back from those files by demucs), imported by StemDesk's
importer, and both run on the same audio: for the networks of MSST, their
forward on a short excerpt (StemDesk's ``network``, MSST's forward as MSST runs it: the DC bin zeroed, the input's
length); for HTDemucs, one whole segment. The difference is the largest absolute one over the reference's peak."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import tempfile
import types
from fractions import Fraction
from pathlib import Path

import torch

from stemdesk.io.catalog import load_catalog
from stemdesk.io.model_import import convert, read_config

RATE = 44100
HTDEMUCS = dict(bottom_channels=512, dconv_mode=3, segment=Fraction(39, 5))  # demucs 4.1.0's htdemucs settings


def namespace(value):
    if isinstance(value, dict):
        return types.SimpleNamespace(**{k: namespace(v) for k, v in value.items()})
    return value


def mdx23c_reference(settings: dict) -> torch.nn.Module:
    """MSST's TFC-TDF v3 from audio-separator 0.47.1 (installed without its requirements: only the network's module
    and the device helper it imports are loaded, under a bare stand-in of its package)."""
    spec = importlib.util.find_spec("audio_separator")
    assert spec is not None and spec.submodule_search_locations, "audio-separator 0.47.1 is not installed"
    stand_in = types.ModuleType("audio_separator.separator")
    stand_in.__path__ = [str(Path(list(spec.submodule_search_locations)[0]) / "separator")]
    sys.modules["audio_separator.separator"] = stand_in
    module = importlib.import_module("audio_separator.separator.uvr_lib_v5.tfc_tdf_v3")
    return module.TFC_TDF_net(namespace(settings), "cpu").eval()


def roformer_reference(architecture: str, model: dict) -> torch.nn.Module:
    if architecture == "bs_roformer":
        from bs_roformer.bs_roformer import BSRoformer as network
    else:
        from bs_roformer.mel_band_roformer import MelBandRoformer as network
    accepted = inspect.signature(network.__init__).parameters
    model = {"linear_transformer_depth": 0, **model}  # MSST's copy has no linear attention
    return network(**{k: tuple(v) if isinstance(v, list) else v for k, v in model.items() if k in accepted}).eval()


def as_msst_runs(reference: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    istft = torch.istft

    def zero_dc_istft(spec, *args, **kwargs):
        kwargs["length"] = audio.shape[-1]
        return istft(spec.index_fill(1, torch.tensor(0), 0.0), *args, **kwargs)

    torch.istft = zero_dc_istft
    try:
        out = reference(audio)
    finally:
        torch.istft = istft
    return out if out.dim() == 4 else out[:, None]


def msst_entry(entry, folder: Path) -> float:
    config = folder / entry.config.file
    config.write_text(entry.config.content)
    settings = read_config(config)
    torch.manual_seed(0)
    if entry.architecture == "mdx23c":
        reference = mdx23c_reference(settings)
        hop = int(settings["audio"]["hop_length"])
        audio = 0.1 * torch.randn(1, 2, hop * 63)  # 64 frames: whole at every scale of the U-Net
    else:
        reference = roformer_reference(entry.architecture, settings["model"])
        audio = 0.1 * torch.randn(1, 2, RATE // 2)
    with torch.no_grad():  # far from the initialisation: every weight matters (the fixed rotary frequencies stay)
        for parameter in reference.parameters():
            if parameter.requires_grad:
                parameter.add_(0.02 * torch.randn_like(parameter))
    weights = folder / entry.files[0].file
    torch.save(reference.state_dict(), weights)
    ours = convert([weights], config, entry.id).estimator.eval()
    weights.unlink()
    with torch.inference_mode():
        theirs = reference(audio) if entry.architecture == "mdx23c" else as_msst_runs(reference, audio)
        theirs = theirs if theirs.dim() == 4 else theirs[:, None]
        got = ours.network(audio)[:, : theirs.shape[1]]
    return float((got - theirs).abs().max() / theirs.abs().max())


def demucs_entry(entry, folder: Path) -> float:
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs
    from demucs.states import load_model, save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    files = []
    for index, item in enumerate(entry.files):
        torch.manual_seed(index)
        network = HTDemucs(sources=list(entry.stems), **HTDEMUCS).eval()
        with torch.no_grad():  # layer scales up, so that the random network is far from linear
            for name, parameter in network.named_parameters():
                if name.endswith(".scale"):
                    parameter.fill_(0.5)
        signature = item.file.split("-")[0]
        save_with_checksum(serialize_model(network, OmegaConf.create({"epochs": 1})), folder / f"{signature}.th")
        files.append(next(folder.glob(f"{signature}-*.th")))
    # the reference is what demucs loads from the files (they hold the weights in float16, as Demucs publishes them)
    networks = [load_model(path).eval() for path in files]
    config = None
    if entry.config is not None:
        config = folder / entry.config.file
        config.write_text(entry.config.content)
    ours = convert(files, config, entry.id, names={p: i.file for p, i in zip(files, entry.files)}).estimator.eval()
    for path in files:
        path.unlink()
    weights = read_config(config).get("weights") if config else None
    bag = BagOfModels(networks, weights)
    torch.manual_seed(1)
    audio = 0.3 * torch.randn(1, 2, int(HTDEMUCS["segment"] * RATE))
    with torch.inference_mode():
        # one segment: apply_model's sum over the bag's models, each weighted per stem, over the weights' sum
        factor = torch.tensor(bag.weights)[:, None, :, None, None]
        theirs = (torch.stack([n(audio) for n in networks]) * factor).sum(0) / factor.sum(0)
        got = ours(audio)
    return float((got - theirs).abs().max() / theirs.abs().max())


def main() -> None:
    torch.set_num_threads(2)
    entries = load_catalog()
    for model_id in sys.argv[1:]:
        entry = entries[model_id]
        with tempfile.TemporaryDirectory(prefix="stemdesk-catalog-network-") as temp:
            check = demucs_entry if entry.architecture == "htdemucs" else msst_entry
            difference = check(entry, Path(temp))
        print(json.dumps({"id": model_id, "difference": difference}), flush=True)


if __name__ == "__main__":
    main()
