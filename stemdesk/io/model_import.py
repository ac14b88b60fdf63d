"""``stemdesk models import``: a checkpoint a producer downloaded, converted into a StemDesk model folder.

Formats (each recognised by what the file holds, not by its name):

- Demucs ``.th`` (``demucs.states.serialize_model``: the model class by name, its arguments and its state):
  HTDemucs (v4) runs on StemDesk's port (`stemdesk.core.estimators.htdemucs`); its arguments are checked against
  what the port implements and anything else is refused by name. Several ``.th`` files with a Demucs bag YAML
  (``demucs/remote/<name>.yaml``: ``models``, ``weights``, optional ``segment``; htdemucs_ft) are one model, the
  bag combined as Demucs combines it (`stemdesk.core.estimators.bag`).
- Open-Unmix ``.pth`` state dicts, one per target (umxhq, umxl or your own), with the ``<target>.json`` or
  ``separator.json`` settings Open-Unmix writes beside them when present (`stemdesk.core.estimators.umx`).
- BS-RoFormer and Mel-RoFormer ``.ckpt`` state dicts from Music-Source-Separation-Training (MSST, UVR), with the
  YAML config they were trained with (`stemdesk.core.estimators.roformer`).
- MDX23C (TFC-TDF v3) ``.ckpt`` state dicts from MSST with their YAML config (`stemdesk.core.estimators.mdx23c`).

Files are read by `stemdesk.io.checkpoints.read_checkpoint` (no code from them runs). The result is a model folder
(card.json + weights.safetensors) in the user's models folder, written to a temporary folder and renamed into place
once complete. The card records the source format and each file's sha256; the licence is unknown: the weights are
as provided by the user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ModelError
from ..core.estimators import AnyEstimator
from ..core.estimators.bag import Bag, check_members
from ..core.estimators.htdemucs import HTDemucs
from ..core.estimators.mdx23c import MDX23C
from ..core.estimators.roformer import BSRoformer, MelBandRoformer, Roformer
from ..core.estimators.umx import UMX
from .atomic import atomic_folder
from .checkpoints import SUPPORTED, ClassReference, read_checkpoint, tensors_of
from .model_store import ModelCard, find_model, read_card, save_model, sha256_file, user_models_dir

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
LICENCE = "unknown: as provided by the user (check the licence of where you downloaded it)"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


@dataclass
class Converted:
    """An estimator with its weights loaded, what to call it, and what its card should say about its source."""

    estimator: AnyEstimator
    name: str
    source_format: str
    description: str
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # more for the card (a bag: its models and weights)


# --- Demucs --------------------------------------------------------------------------------------------------------

HTDEMUCS_CLASS = "demucs.htdemucs.HTDemucs"
OTHER_DEMUCS = {
    "demucs.hdemucs.HDemucs": "Hybrid Demucs (v3: hdemucs_mmi, mdx, mdx_extra)",
    "demucs.demucs.Demucs": "Demucs (v2, waveform only)",
}
# HTDemucs arguments that change what the network computes, with the value StemDesk's port implements (the demucs
# default or the released models' value). Others are training options and do not matter for separation.
HTDEMUCS_FIXED: dict[str, Any] = {
    "channels_time": None,
    "growth": 2,
    "wiener_iters": 0,
    "cac": True,
    "rewrite": True,
    "multi_freqs": [],
    "emb_scale": 10,
    "kernel_size": 8,
    "stride": 4,
    "context": 1,
    "context_enc": 0,
    "dconv_depth": 2,
    "dconv_comp": 8,
    "t_emb": "sin",
    "t_hidden_scale": 4.0,
    "t_norm_in": True,
    "t_norm_in_group": False,
    "t_group_norm": False,
    "t_norm_first": True,
    "t_norm_out": True,
    "t_max_period": 10000.0,
    "t_layer_scale": True,
    "t_gelu": True,
    "t_weight_pos_embed": 1.0,
    "t_sparse_self_attn": False,
    "t_sparse_cross_attn": False,
    "t_cross_first": False,
    "use_train_segment": True,
}
HTDEMUCS_DEFAULTS: dict[str, Any] = {
    "audio_channels": 2,
    "channels": 48,
    "nfft": 4096,
    "depth": 4,
    "freq_emb": 0.2,
    "norm_starts": 4,
    "dconv_mode": 1,
    "bottom_channels": 0,
    "t_layers": 5,
    "t_heads": 8,
    "samplerate": 44100,
    "segment": 10,
}


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b or (a in ([], ()) and b in ([], ())) or (b in ([], ()) and a in ([], ()))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def convert_demucs(package: dict, path: Path, bag_segment: float | None = None) -> Converted:
    """An HTDemucs .th; ``bag_segment`` is the ``segment`` of the bag it is imported in, which sets its segment
    where it is not longer than the model's own (as Demucs's ``BagOfModels`` does)."""
    klass = package.get("klass")
    name = klass.name if isinstance(klass, ClassReference) else repr(klass)
    if name != HTDEMUCS_CLASS:
        what = OTHER_DEMUCS.get(name, "a Demucs model class StemDesk does not know")
        raise ModelError(
            f'"{path.name}" is a Demucs checkpoint of {name} ({what}). StemDesk runs HTDemucs (v4) only: import '
            "an HTDemucs checkpoint (htdemucs, htdemucs_6s, htdemucs_ft's four files), or install the released "
            "one. Nothing was installed.",
            setting="install",
            value="htdemucs",
        )
    args, kwargs = package.get("args") or (), package.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not isinstance(args, (tuple, list)):
        raise ModelError(f'"{path.name}": its arguments are not readable. Nothing was installed.')
    kwargs = dict(kwargs)
    if args:  # HTDemucs(sources, ...) positionally
        kwargs.setdefault("sources", args[0])
    options = {**HTDEMUCS_DEFAULTS, **kwargs}
    unsupported = [f"{k}={kwargs[k]!r}" for k, v in HTDEMUCS_FIXED.items() if k in kwargs and not _same(kwargs[k], v)]
    if options["norm_starts"] < options["depth"]:
        unsupported.append(f"norm_starts={options['norm_starts']}")
    if options["dconv_mode"] not in (1, 3):
        unsupported.append(f"dconv_mode={options['dconv_mode']}")
    if not options["bottom_channels"]:
        unsupported.append("bottom_channels=0")
    if not options["freq_emb"]:
        unsupported.append("freq_emb=0")
    if options["nfft"] // 2 // 4 ** (options["depth"] - 1) <= HTDEMUCS_FIXED["kernel_size"]:
        # every layer of the port convolves over more frequencies than its kernel (the reference switches to a
        # narrower last layer and time-only layers otherwise)
        unsupported.append(f"nfft={options['nfft']} with depth={options['depth']}")
    if unsupported:
        raise ModelError(
            f'"{path.name}" is an HTDemucs with {", ".join(unsupported)}, which StemDesk\'s HTDemucs does not '
            "implement (it runs the released configuration and its size variants). Nothing was installed."
        )
    state = package.get("state")
    if isinstance(state, dict) and state.get("__quantized"):
        raise ModelError(
            f'"{path.name}" is compressed with DiffQ (a "_q" model); StemDesk reads unquantized checkpoints only. '
            "Use the model's unquantized release. Nothing was installed."
        )
    sources = [str(s) for s in options.get("sources") or []]
    rate = int(options["samplerate"])
    if bag_segment is not None and bag_segment <= options["segment"]:
        options["segment"] = bag_segment
    # as the reference computes its training length: int(segment · samplerate)
    exact = isinstance(options["segment"], (int, Fraction))
    segment = int(Fraction(options["segment"]) * rate) if exact else int(float(options["segment"]) * rate)
    try:
        model = HTDemucs(
            sources=sources,
            sample_rate=rate,
            channels=int(options["audio_channels"]),
            segment=segment,
            width=int(options["channels"]),
            depth=int(options["depth"]),
            nfft=int(options["nfft"]),
            bottom_channels=int(options["bottom_channels"]),
            transformer_layers=int(options["t_layers"]),
            heads=int(options["t_heads"]),
            freq_emb=float(options["freq_emb"]),
            decoder_dconv=options["dconv_mode"] == 3,
        )
    except (ValueError, TypeError) as error:
        raise ModelError(
            f'"{path.name}": its HTDemucs settings are not usable ({error}). Nothing was installed.'
        ) from None
    _load(model, tensors_of(state, "state", path), path, "HTDemucs")
    seconds = segment / rate
    return Converted(
        model,
        _name_from(path),
        "demucs .th (demucs.htdemucs.HTDemucs)",
        f"HTDemucs imported from {path.name}: {len(sources)} stems ({', '.join(sources)}), {seconds:.1f}-s "
        "segments; StemDesk runs its own port of the network, and its stems are made to null.",
    )


# --- Demucs bags of models ----------------------------------------------------------------------------------------


def demucs_signature(name: str) -> str:
    """The signature Demucs finds a model by in its file's name: ``f7e0c4bc`` for ``f7e0c4bc-ba3fe64a.th`` (the
    part before the checksum, as demucs.repo.LocalRepo reads it), the name's stem when it has no checksum."""
    stem = Path(name).stem
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


def is_demucs_bag(config: Any) -> bool:
    """Whether a config is a Demucs bag's YAML (``models: [...]``), not a training config."""
    return isinstance(config, dict) and "models" in config and "model" not in config and "audio" not in config


def bag_settings(config: dict[str, Any], config_path: Path) -> tuple[list[str], list[list[float]] | None, Any]:
    """A bag YAML's (models, weights or None, segment or None), checked for their types; a ModelError says what
    is wrong. The weights' shape is checked against the models' stems by `convert_demucs_bag`."""
    where = f'"{config_path.name}"'
    models = config.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ModelError(
            f"{where} is not a Demucs bag: its models must be a list of model signatures (e.g. models: "
            "['f7e0c4bc', 'd12395a8']). Pass the YAML Demucs publishes (demucs/remote/NAME.yaml). Nothing was "
            "installed.",
            setting="config",
        )
    weights = config.get("weights")
    if weights is not None and (
        not isinstance(weights, list)
        or not all(
            isinstance(row, list) and all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in row)
            for row in weights
        )
    ):
        raise ModelError(
            f"{where}: its weights must be a list of rows of numbers, one row per model and one number per stem "
            "(e.g. [[1., 0.], [0., 1.]]). Fix the YAML. Nothing was installed.",
            setting="config",
        )
    segment = config.get("segment")
    if segment is not None and (isinstance(segment, bool) or not isinstance(segment, (int, float)) or segment <= 0):
        raise ModelError(
            f"{where}: its segment must be a positive number of seconds, not {segment!r}. Fix the YAML. Nothing was "
            "installed.",
            setting="config",
        )
    return (
        [str(m) for m in models],
        [[float(w) for w in row] for row in weights] if weights is not None else None,
        segment,
    )


def convert_demucs_bag(
    packages: dict[Path, dict], config_path: Path, config: dict[str, Any], names: dict[Path, str]
) -> Converted:
    """Demucs's bag of models: each model the YAML names found among the files (by the signature in its name,
    ``names`` giving a file's published name where it was saved under another), converted, and combined with the
    YAML's weights (`stemdesk.core.estimators.bag.Bag`). A model whose weights are all 0 is left out (Demucs runs
    it only to multiply its stems by 0)."""
    signatures, weights, segment = bag_settings(config, config_path)
    where = f'"{config_path.name}"'
    by_signature: dict[str, Path] = {}
    for path in packages:
        signature = demucs_signature(names.get(path, path.name))
        if signature in by_signature:
            raise ModelError(
                f'"{by_signature[signature].name}" and "{path.name}" are both the model {signature}. Give each '
                "model of the bag once. Nothing was installed."
            )
        by_signature[signature] = path
    missing = [sig for sig in dict.fromkeys(signatures) if sig not in by_signature]
    if missing:
        given = ", ".join(f'"{p.name}"' for p in packages)
        raise ModelError(
            f"{where} is a bag of {len(signatures)} models ({', '.join(signatures)}), but no file given is "
            f"{' or '.join(missing)} (Demucs names a model's file SIGNATURE-CHECKSUM.th, e.g. {missing[0]}-….th; "
            f"given: {given}). Give every model's file too. Nothing was installed.",
            setting="file",
        )
    extra = [p.name for sig, p in by_signature.items() if sig not in signatures]
    if extra:
        raise ModelError(
            f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not among the models {where} names "
            f"({', '.join(signatures)}). Leave {'it' if len(extra) == 1 else 'them'} out, or give the bag "
            f"{'it belongs' if len(extra) == 1 else 'they belong'} to. Nothing was installed."
        )
    converted = {sig: convert_demucs(packages[by_signature[sig]], by_signature[sig], segment) for sig in by_signature}
    members: list[HTDemucs] = []
    for sig in signatures:
        member = converted[sig].estimator
        assert isinstance(member, HTDemucs), "convert_demucs makes HTDemucs"
        members.append(member)
    files = [by_signature[sig].name for sig in signatures]
    rows = weights if weights is not None else [[1.0] * len(members[0].sources) for _ in members]
    try:
        check_members(members, rows, files)
    except ValueError as error:
        text = str(error)
        if "weights" in text:
            advice = "Fix the YAML's weights (one row per model, one weight per stem, in the models' stem order)."
        elif "segment" in text:
            advice = (
                "Give the bag a segment no longer than its shortest model's (segment: SECONDS in the YAML), as "
                "Demucs would then run them all on it."
            )
        else:
            advice = "Import together only models Demucs can bag: the same stems in the same order, rate and channels."
        raise ModelError(f"{where}: {text}. {advice} Nothing was installed.") from None
    used = [i for i, row in enumerate(rows) if any(w != 0 for w in row)]
    notes = [
        f"{signatures[i]} ({files[i]}) has weight 0 for every stem: Demucs runs it only to multiply its stems by 0, "
        "StemDesk leaves it out"
        for i in range(len(members))
        if i not in used
    ]
    bag = Bag(
        members=[{"kind": members[i].kind, "config": members[i].config()} for i in used],
        weights=[rows[i] for i in used],
    )
    for slot, index in enumerate(used):
        bag.members[slot].load_state_dict(members[index].state_dict())
    bag.eval()
    sources = list(bag.sources)
    shown = "; ".join(
        f"{sig}: " + ", ".join(f"{stem} {w:g}" for stem, w in zip(sources, row)) for sig, row in zip(signatures, rows)
    )
    identity = len(members) == len(sources) and all(
        rows[i][j] == (1.0 if i == j else 0.0) for i in range(len(rows)) for j in range(len(sources))
    )
    how = (
        "each stem taken from its own model"
        if identity
        else "each stem the weighted mean of the models' estimates of it (their weights for it, divided by the sum)"
    )
    return Converted(
        bag,
        _name_from(config_path),
        "demucs bag: .yaml with its .th files (demucs.apply.BagOfModels)",
        f"A bag of {len(members)} HTDemucs imported from {config_path.name} and {', '.join(files)}: weights "
        f"{shown}; {how}, as Demucs's apply_model combines a bag. {bag.segment / bag.sample_rate:.1f}-s "
        f"segments; {len(used)} networks run on each segment, so it takes about {len(used)}× the time of one. "
        "StemDesk runs its own port of the network, and its stems are made to null.",
        notes,
        {
            "bag": {
                "models": signatures,
                "files": files,
                "sources": sources,
                "weights": rows,
                "run": [signatures[i] for i in used],
                "segment_seconds": bag.segment / bag.sample_rate,
                "combined": "as demucs.apply.apply_model combines a BagOfModels: each model's stems times its "
                "weights, summed, each stem divided by the sum of its weights",
            }
        },
    )


# --- Open-Unmix ----------------------------------------------------------------------------------------------------

UMX_KEYS = {"fc1.weight", "bn1.weight", "lstm.weight_ih_l0", "fc3.weight", "input_mean", "output_mean"}
UMX_NETWORK = re.compile(
    r"^(fc[123]\.weight|bn[123]\.(weight|bias|running_mean|running_var|num_batches_tracked)|input_(mean|scale)"
    r"|output_(mean|scale)|lstm\.(weight|bias)_(ih|hh)_l\d+(_reverse)?)$"
)
# Keys older Open-Unmix files carry beside the network (its STFT's window), which the network does not use.
UMX_EXTRA = re.compile(r"^(stft\.|transform\.|spec\.|sample_rate$)")


def _umx_target(path: Path) -> str:
    """Open-Unmix names its files <target>.pth or <target>-<sha256 prefix>.pth (torch hub)."""
    return re.sub(r"-[0-9a-f]{8}$", "", path.stem)


def _umx_settings(paths: Sequence[Path], configs: Sequence[Path]) -> dict[str, Any]:
    """Open-Unmix's settings from separator.json or <target>.json (given or beside the files): rate, nfft, nhop."""
    found: dict[str, Any] = {}
    candidates = list(configs)
    for path in paths:
        candidates += [path.parent / "separator.json", path.parent / f"{_umx_target(path)}.json"]
    for candidate in candidates:
        if candidate.suffix.lower() != ".json" or not candidate.is_file() or candidate.stat().st_size > 1 << 20:
            continue
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ModelError(f'"{candidate.name}" is not valid JSON. Fix or remove it and import again.') from None
        if not isinstance(data, dict):
            continue
        args: dict[str, Any] = data["args"] if isinstance(data.get("args"), dict) else {}
        for key, names in (("rate", ("sample_rate", "rate")), ("nfft", ("nfft",)), ("nhop", ("nhop",))):
            for source in (data, args):
                for name in names:
                    if name in source and key not in found:
                        found[key] = source[name]
    return found


def convert_umx(states: dict[Path, dict], configs: Sequence[Path], name: str | None) -> Converted:
    targets: dict[str, dict[str, torch.Tensor]] = {}
    for path, state in states.items():
        target = _umx_target(path)
        if target in targets:
            raise ModelError(f'Two files are for the target "{target}"; import one file per target.')
        unknown = sorted(k for k in state if not UMX_NETWORK.match(k) and not UMX_EXTRA.match(k))
        if unknown:
            raise ModelError(
                f'"{path.name}" is an Open-Unmix state dict with keys the network does not have ({", ".join(unknown[:3])}).'
                " Nothing was installed."
            )
        targets[target] = {k: v for k, v in state.items() if not UMX_EXTRA.match(k)}
    first_path, first = next(iter(states)), next(iter(targets.values()))
    hidden = first["fc1.weight"].shape[0]
    max_bin = first["input_mean"].shape[0]
    channels = first["fc1.weight"].shape[1] // max_bin
    bins = first["output_mean"].shape[0]
    layers = len([k for k in first if re.fullmatch(r"lstm\.weight_ih_l\d+", k)])
    unidirectional = "lstm.weight_ih_l0_reverse" not in first
    settings = _umx_settings(list(states), configs)
    n_fft = int(settings.get("nfft", 2 * (bins - 1)))
    if n_fft // 2 + 1 != bins:
        raise ModelError(
            f'"{first_path.name}" has {bins} frequency bins, which does not fit nfft={n_fft} from its settings. '
            "Nothing was installed."
        )
    hop = int(settings.get("nhop", n_fft // 4))
    rate = int(float(settings.get("rate", 44100)))
    names = list(targets)
    residual = len(names) == 1
    sources = names + (["accompaniment" if names[0] == "vocals" else "rest"] if residual else [])
    model = UMX(
        sources=sources,
        stft={"n_fft": n_fft, "hop": hop, "sample_rate": rate},
        channels=channels,
        residual=residual,
        hidden=hidden,
        layers=layers,
        max_bin=max_bin,
        unidirectional=unidirectional,
    )
    state = {f"target_models.{t}.{k}": v for t, s in targets.items() for k, v in s.items()}
    _load(model, state, first_path, "Open-Unmix")
    notes = []
    if "rate" not in settings:
        notes.append(f"no settings file: {rate} Hz, {n_fft}-point STFT with hop {hop} assumed (Open-Unmix's)")
    default = first_path.parent.name if len(states) > 1 else _name_from(first_path)
    return Converted(
        model,
        name or default,
        "open-unmix .pth",
        f"Open-Unmix imported from {', '.join(p.name for p in states)}: one recurrent network per target "
        f"({', '.join(names)}{'; the residual is the mix minus it' if residual else ''}), masks from their "
        "magnitude estimates (Open-Unmix's softmask separation; --wiener 1 adds its Wiener step).",
        notes,
    )


# --- RoFormers -----------------------------------------------------------------------------------------------------


class _ConfigLoader:
    """Built on demand: a YAML SafeLoader that also reads MSST's ``!!python/tuple`` as a list (and no other
    Python tag)."""

    @staticmethod
    def load(text: str) -> Any:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_constructor(
            "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node, deep=True)
        )
        return yaml.load(text, Loader=Loader)  # a SafeLoader: no Python objects beyond the tuple


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f'The config "{path}" does not exist. Check its path.', setting="config")
    if path.stat().st_size > 1 << 20:
        raise ModelError(f'"{path.name}" is larger than 1 MB, so it is not a model config.')
    return parse_config(path.read_text(encoding="utf-8", errors="replace"), path.name)


def parse_config(text: str, name: str) -> dict[str, Any]:
    """A config's settings from its text (YAML as MSST reads it, JSON when ``name`` ends in .json)."""
    try:
        data = json.loads(text) if name.lower().endswith(".json") else _ConfigLoader.load(text)
    except Exception as error:  # noqa: BLE001 - yaml and json raise many error types for malformed text
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f'"{name}" is not a readable config ({first}). Nothing was installed.') from None
    if not isinstance(data, dict):
        raise ModelError(f'"{name}" does not hold a config (a mapping of settings). Nothing was installed.')
    return data


ROFORMER_UNSUPPORTED = {
    "linear_transformer_depth": 0,
    "skip_connection": False,
    "use_pope": False,
    "num_residual_streams": 1,
}


def _roformer_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """MSST's and the reference package's keys as StemDesk's: rotary frequencies dropped (they are fixed, and
    checked), the reference package's empty linear-attention slot (layers.i.0 = None) renumbered away."""
    out = {}
    for key, value in state.items():
        if key.endswith("rotary_embed.freqs"):
            dim = value.shape[0] * 2
            expected = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
            if not torch.allclose(value.float(), expected, rtol=1e-5):
                raise ModelError(
                    f'"{path.name}" has learnt rotary frequencies, which StemDesk\'s RoFormer does not implement. '
                    "Nothing was installed."
                )
            continue
        out[key] = value
    blocks = {m[1] for k in out if (m := re.match(r"layers\.\d+\.(\d+)\.", k))}
    if blocks == {"1", "2"}:
        out = {
            re.sub(r"^layers\.(\d+)\.([12])\.", lambda m: f"layers.{m[1]}.{int(m[2]) - 1}.", k): v
            for k, v in out.items()
        }
    return out


def _msst_sources(config_path: Path, training: dict[str, Any], stems: int) -> tuple[list[str], bool]:
    """An MSST config's stems for a network that predicts ``stems`` of them: (sources, residual). A model trained
    for one ``target_instrument`` (or one stem) gets the mixture minus it as its last source, named after the other
    instrument when there is exactly one."""
    instruments = [str(i) for i in training.get("instruments") or []]
    target = training.get("target_instrument")
    if target:
        if stems != 1:
            raise ModelError(
                f'"{config_path.name}" names one target instrument but {stems} stems. Nothing was installed.'
            )
        others = [i for i in instruments if i != target]
        return [str(target), others[0] if len(others) == 1 else "rest"], True
    if len(instruments) == stems > 1:
        return instruments, False
    if stems == 1 and instruments:
        return [instruments[0], "rest"], True
    raise ModelError(
        f'"{config_path.name}" lists instruments {instruments} for {stems} stems; StemDesk cannot tell which '
        "stem is which. Nothing was installed."
    )


def msst_stems(config: dict[str, Any], config_path: Path) -> list[str]:
    """The stems a model imported with this MSST config will have, as the importer names them (a target instrument
    and the rest; or every instrument), read before any weights: the catalog checks them against how it applies
    the model to a stem. Raises ModelError as the import would."""
    model_cfg, _, training, _ = _msst_sections(config, config_path)
    if is_mdx23c(model_cfg):
        return list(mdx23c_settings(config, config_path)[0]["sources"])
    return _msst_sources(config_path, training, int(model_cfg.get("num_stems", 1)))[0]


def _msst_sections(config: dict[str, Any], config_path: Path) -> tuple[dict, dict, dict, dict]:
    """An MSST config's model, audio, training and inference sections (a clear refusal when it is not one)."""
    model_cfg = config.get("model")
    audio, training, inference = (config.get(name) or {} for name in ("audio", "training", "inference"))
    if not (
        isinstance(model_cfg, dict)
        and isinstance(audio, dict)
        and isinstance(training, dict)
        and isinstance(inference, dict)
    ):
        raise ModelError(
            f'"{config_path.name}" has no "model" section; it is not a Music-Source-Separation-Training config. '
            "Pass the YAML published with the checkpoint. Nothing was installed."
        )
    return model_cfg, audio, training, inference


def convert_roformer(state: dict[str, torch.Tensor], path: Path, config_path: Path | None) -> Converted:
    if config_path is None:
        raise ModelError(
            f'"{path.name}" is a RoFormer checkpoint, which holds weights but not the settings needed to build the '
            "network. Give the YAML config it was trained with too (published beside the .ckpt, e.g. "
            "config_vocals_bs_roformer.yaml). Nothing was installed.",
            setting="config",
        )
    model_cfg, audio, training, _ = _msst_sections(read_config(config_path), config_path)
    mel = "num_bands" in model_cfg
    if not mel and "freqs_per_bands" not in model_cfg:
        raise ModelError(
            f'"{config_path.name}" describes neither a BS-RoFormer (freqs_per_bands) nor a Mel-RoFormer '
            "(num_bands). Pass the config of this checkpoint. Nothing was installed."
        )
    used = [f"{k}={model_cfg[k]!r}" for k, v in ROFORMER_UNSUPPORTED.items() if k in model_cfg and model_cfg[k] != v]
    if used:
        raise ModelError(
            f'"{config_path.name}" uses {", ".join(used)}, which StemDesk\'s RoFormer does not implement yet. '
            "Nothing was installed."
        )
    sources, residual = _msst_sources(config_path, training, int(model_cfg.get("num_stems", 1)))
    model: Roformer
    try:
        rate = int(model_cfg.get("sample_rate") or audio.get("sample_rate") or 44100)
        common: dict[str, Any] = dict(
            sources=sources,
            sample_rate=rate,
            channels=2 if model_cfg.get("stereo", False) else 1,
            segment=int(audio.get("chunk_size", 352800)),
            residual=residual,
            dim=int(model_cfg["dim"]),
            depth=int(model_cfg["depth"]),
            time_transformer_depth=int(model_cfg.get("time_transformer_depth", 2)),
            freq_transformer_depth=int(model_cfg.get("freq_transformer_depth", 2)),
            dim_head=int(model_cfg.get("dim_head", 64)),
            heads=int(model_cfg.get("heads", 8)),
            n_fft=int(model_cfg.get("stft_n_fft", 2048)),
            hop=int(model_cfg.get("stft_hop_length", 512)),
            win_length=int(model_cfg.get("stft_win_length", 2048)),
            normalized=bool(model_cfg.get("stft_normalized", False)),
            mask_estimator_depth=int(model_cfg.get("mask_estimator_depth", 1 if mel else 2)),
            mlp_expansion_factor=int(model_cfg.get("mlp_expansion_factor", 4)),
            zero_dc=bool(model_cfg.get("zero_dc", True)),
        )
        if mel:
            model = MelBandRoformer(**common, num_bands=int(model_cfg["num_bands"]))
        else:
            model = BSRoformer(**common, freqs_per_bands=[int(n) for n in model_cfg["freqs_per_bands"]])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f'"{config_path.name}": its model settings are not usable ({error!r}). Nothing was installed.'
        ) from None
    _load(model, _roformer_state(state, path), path, "Mel-RoFormer" if mel else "BS-RoFormer", config_path)
    kind = "Mel-band RoFormer" if mel else "BS-RoFormer"
    return Converted(
        model,
        _name_from(path),
        f"{'mel-band-roformer' if mel else 'bs-roformer'} .ckpt with YAML config (Music-Source-Separation-Training)",
        f"{kind} imported from {path.name} and {config_path.name}: stems {', '.join(sources)}"
        f"{' (the last is the mix minus the other)' if residual else ''}, "
        f"{common['segment'] / rate:.1f}-s segments; StemDesk runs its own implementation and its stems are made "
        "to null.",
    )


# --- MDX23C --------------------------------------------------------------------------------------------------------

# The MDX23C config's settings, by section, that shape the network: what StemDesk builds it from.
MDX23C_MODEL = (
    "act",
    "bottleneck_factor",
    "growth",
    "num_blocks_per_scale",
    "num_channels",
    "num_scales",
    "num_subbands",
    "scale",
)
MDX23C_AUDIO = ("chunk_size", "n_fft", "hop_length", "dim_f")


def is_mdx23c(model_cfg: dict[str, Any]) -> bool:
    """Whether an MSST model section describes an MDX23C (TFC-TDF v3) network."""
    return {"num_subbands", "num_scales", "bottleneck_factor"} <= set(model_cfg)


def mdx23c_settings(config: dict[str, Any], config_path: Path) -> tuple[dict[str, Any], list[str]]:
    """The `MDX23C` arguments an MSST config describes, and notes for the card; a ModelError naming any option
    StemDesk does not run (checked before weights are read, so the catalog can refuse before it downloads)."""
    model_cfg, audio, training, inference = _msst_sections(config, config_path)
    missing = [f"model.{k}" for k in MDX23C_MODEL if k not in model_cfg]
    missing += [f"audio.{k}" for k in MDX23C_AUDIO if k not in audio]
    if missing:
        raise ModelError(
            f'"{config_path.name}" is not a complete MDX23C config (no {", ".join(missing)}). Pass the YAML '
            "published with the checkpoint. Nothing was installed."
        )
    channels = int(audio.get("num_channels", 2))
    if channels != 2:
        raise ModelError(
            f'"{config_path.name}" describes an MDX23C with audio.num_channels={channels}, which StemDesk does '
            "not run: it runs stereo MDX23C models, as the reference implementation does. Nothing was installed."
        )
    instruments = [str(i) for i in training.get("instruments") or []]
    target = training.get("target_instrument")
    sources, residual = _msst_sources(config_path, training, 1 if target else len(instruments))
    norm = model_cfg.get("norm")
    notes = []
    if norm is not None and norm not in ("BatchNorm", "InstanceNorm") and "GroupNorm" not in str(norm):
        notes.append(
            f"model.norm {norm!r} is not a norm the reference knows: it runs without one, and so does StemDesk"
        )
    if inference.get("normalize"):
        notes.append(
            "the config asks MSST to normalise the whole song before separating (inference.normalize); StemDesk "
            "separates it as it is"
        )
    settings: dict[str, Any] = dict(
        sources=sources,
        sample_rate=int(audio.get("sample_rate", 44100)),
        channels=channels,
        # MSST's inference reads an inference.chunk_size before the training one
        segment=int(inference.get("chunk_size") or audio["chunk_size"]),
        residual=residual,
        n_fft=int(audio["n_fft"]),
        hop=int(audio["hop_length"]),
        dim_f=int(audio["dim_f"]),
        num_subbands=int(model_cfg["num_subbands"]),
        num_scales=int(model_cfg["num_scales"]),
        scale=[int(s) for s in model_cfg["scale"]],
        num_blocks_per_scale=int(model_cfg["num_blocks_per_scale"]),
        width=int(model_cfg["num_channels"]),
        growth=int(model_cfg["growth"]),
        bottleneck_factor=int(model_cfg["bottleneck_factor"]),
        norm=None if norm is None else str(norm),
        act=str(model_cfg["act"]),
    )
    try:
        MDX23C.check_settings(**settings)  # without building the network (the catalog checks before it downloads)
    except (TypeError, ValueError) as error:
        raise ModelError(
            f'"{config_path.name}" describes an MDX23C StemDesk cannot build ({error}). Nothing was installed.'
        ) from None
    return settings, notes


def convert_mdx23c(state: dict[str, torch.Tensor], path: Path, config_path: Path | None) -> Converted:
    if config_path is None:
        raise ModelError(
            f'"{path.name}" is an MDX23C checkpoint, which holds weights but not the settings needed to build the '
            "network. Give the YAML config it was trained with too (published beside the .ckpt, e.g. "
            "config_mdx23c.yaml). Nothing was installed.",
            setting="config",
        )
    config = read_config(config_path)
    model_cfg = config.get("model")
    if isinstance(model_cfg, dict) and not is_mdx23c(model_cfg):
        raise ModelError(
            f'"{path.name}" holds MDX23C weights, but "{config_path.name}" does not describe an MDX23C (no '
            "num_subbands, num_scales or bottleneck_factor). Pass the config of this checkpoint. Nothing was "
            "installed.",
            setting="config",
        )
    settings, notes = mdx23c_settings(config, config_path)
    model = MDX23C(**settings)
    _load(model, state, path, "MDX23C", config_path)
    sources, rate = settings["sources"], settings["sample_rate"]
    return Converted(
        model,
        _name_from(path),
        "mdx23c .ckpt with YAML config (Music-Source-Separation-Training, TFC-TDF v3)",
        f"MDX23C (TFC-TDF v3) imported from {path.name} and {config_path.name}: stems {', '.join(sources)}"
        f"{' (the last is the mix minus the other)' if settings['residual'] else ''}, "
        f"{settings['segment'] / rate:.1f}-s segments; StemDesk runs its own implementation and its stems are made "
        "to null.",
        notes,
    )


# --- shared --------------------------------------------------------------------------------------------------------


def _load(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str, config: Path | None = None
) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split("\n", 2)[1:2]).strip()[:240]
        hint = f" It may not match {config.name}: pass the config it was trained with." if config else ""
        raise ModelError(
            f'"{path.name}" does not fit the {what} its settings describe ({detail}).{hint} Nothing was installed.'
        ) from None
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(f'"{path.name}": weight {name!r} holds values that are not finite. Nothing was installed.')
    model.eval()


def _name_from(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")
    return name[:80] or "imported"


def _unwrap(obj: Any) -> Any:
    """Training frameworks wrap the state dict: {"state_dict": ...}, {"state": ...}, {"model": ...}."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in ("state_dict", "state", "model", "model_state_dict"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
            else:
                return obj
    return obj


def convert(
    files: Sequence[Path], config: Path | None = None, name: str | None = None, names: dict[Path, str] | None = None
) -> Converted:
    """Read and convert checkpoint files (several only for Open-Unmix's per-target files and the models of a Demucs
    bag with its YAML; a .yaml/.yml/.json among them is taken as the config). ``names``: the names files were
    published under, where they were saved under others (a Demucs bag finds its models by name)."""
    files = [Path(f) for f in files]
    configs = [f for f in files if f.suffix.lower() in CONFIG_SUFFIXES]
    checkpoints = [f for f in files if f not in configs]
    if config is not None:
        configs.insert(0, Path(config))
    if not checkpoints:
        raise ModelError(f"No checkpoint given (only configs: {', '.join(f.name for f in configs)}). {SUPPORTED}.")
    loaded = {path: read_checkpoint(path) for path in checkpoints}
    kinds = {}
    for path, obj in loaded.items():
        if isinstance(obj, dict) and "klass" in obj and "state" in obj:
            kinds[path] = "demucs"
            continue
        obj = _unwrap(obj)
        state = tensors_of(obj, "content", path) if isinstance(obj, dict) else None
        if state is None:
            raise ModelError(f'"{path.name}" holds a {type(obj).__name__}, not model weights. {SUPPORTED}.')
        if all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
            state = {k.removeprefix("module."): v for k, v in state.items()}
        loaded[path] = state
        if UMX_KEYS <= set(state):
            kinds[path] = "umx"
        elif any(k.startswith("band_split.to_features.") for k in state) and any(".to_qkv." in k for k in state):
            kinds[path] = "roformer"
        elif {"first_conv.weight", "final_conv.2.weight"} <= set(state) and any(
            k.startswith("bottleneck_block.blocks.") for k in state
        ):
            kinds[path] = "mdx23c"
        else:
            shown = ", ".join(list(state)[:3])
            raise ModelError(
                f'"{path.name}" holds weights StemDesk does not recognise (first keys: {shown}). It imports '
                f"{SUPPORTED}. Nothing was installed."
            )
    found = set(kinds.values())
    if found == {"demucs"}:
        bags = [(c, data) for c in configs if c.suffix.lower() in (".yaml", ".yml") for data in [read_config(c)]]
        bags = [(c, data) for c, data in bags if is_demucs_bag(data)]
        if bags:
            bag_path, bag = bags[0]
            converted = convert_demucs_bag({p: loaded[p] for p in checkpoints}, bag_path, bag, dict(names or {}))
            if name:
                converted.name = name
            return converted
        if len(checkpoints) > 1:
            raise ModelError(
                f"{len(checkpoints)} Demucs .th files are imported together only as a bag of models: give the bag's "
                "YAML too (demucs/remote/NAME.yaml, e.g. htdemucs_ft.yaml: models: [...], weights: [[...]]), or "
                "import one file at a time. Nothing was installed.",
                setting="config",
            )
    if len(checkpoints) > 1 and found != {"umx"}:
        raise ModelError(
            "Import one checkpoint at a time; only Open-Unmix's per-target .pth files, and the .th files of a "
            "Demucs bag with its YAML, are imported together. Nothing was installed."
        )
    path = checkpoints[0]
    if found == {"umx"}:
        return convert_umx({p: loaded[p] for p in checkpoints}, configs, name)
    if found == {"demucs"}:
        converted = convert_demucs(loaded[path], path)
    else:
        yaml_configs = [c for c in configs if c.suffix.lower() in (".yaml", ".yml", ".json")]
        msst = convert_mdx23c if found == {"mdx23c"} else convert_roformer
        converted = msst(loaded[path], path, yaml_configs[0] if yaml_configs else None)
    if name:
        converted.name = name
    return converted


def import_model(
    files: Sequence[Path],
    config: Path | None = None,
    name: str | None = None,
    target_root: Path | None = None,
    progress: Progress | None = None,
) -> ModelCard:
    """Convert checkpoint files (see `convert`) into a model named ``name`` (default: from the file) in the user's
    models folder, and return its card. Nothing is written unless the whole conversion worked."""
    report = progress or (lambda what, fraction: None)
    files = [Path(f) for f in files]
    if name is not None and not NAME_PATTERN.fullmatch(name):
        raise ModelError(
            f"{name!r} is not a usable model name: use letters, digits, '.', '_' and '-' (at most 80), starting "
            "with a letter or digit."
        )
    report("Reading the checkpoint", 0.1)
    converted = convert(files, config, name)
    model_id = converted.name
    try:
        existing = find_model(model_id)
    except ModelError:
        existing = None
    if existing is not None:
        raise ModelError(
            f'A model named "{model_id}" is already installed ({existing.folder}). Choose another name, or remove '
            "the old one first.",
            setting="name",
        )
    report("Writing the model", 0.7)
    sources = [f for f in files if f.suffix.lower() not in CONFIG_SUFFIXES]
    configs = [f for f in files if f.suffix.lower() in CONFIG_SUFFIXES] + ([Path(config)] if config else [])
    card = {
        "description": converted.description,
        "training_data": "unknown (as provided by the user)",
        "licenses": {"weights": LICENCE, "code": "StemDesk's implementation: GPL-3.0-or-later"},
        "license_note": "Imported by you from a file you provided; StemDesk does not know its licence or training "
        "data. Check them before sharing anything made with it.",
        "redistributable": False,
        "source": {
            "format": converted.source_format,
            "files": [{"name": f.name, "sha256": sha256_file(f)} for f in sources],
            "configs": [{"name": c.name, "sha256": sha256_file(c)} for c in configs if c.is_file()],
        },
        **({"import_notes": converted.notes} if converted.notes else {}),
        **converted.facts,
    }
    root = target_root or user_models_dir()
    final = root / model_id
    try:
        with atomic_folder(final) as staging:
            save_model(staging, model_id, converted.estimator, card)
    except OSError as error:
        raise ModelError(
            f'Could not write the model to "{root}" ({error.strerror or error}). Free some space or check the '
            "folder's permissions; nothing was installed."
        ) from None
    report("Imported", 1.0)
    return read_card(final)
