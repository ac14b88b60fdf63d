"""The model store: ``<models folder>/<id>/card.json`` + ``weights.safetensors``.

Folders searched, in order: the models shipped with StemDesk (the repository's ``models/`` or the installed copy),
then the user's models folder (platformdirs), then any folders in ``STEMDESK_MODELS_PATH``. Weights are loaded only
from safetensors and only after their sha256 matches the card; no pickle is ever loaded.

A shipped model's weights may be stored compressed, losslessly (``weights.safetensors.xz``, or ``.gz`` where the
model loads with every separation and LZMA's slower decoding would show): the card's sha256 is always that of the
safetensors bytes inside, so a compressed file is the same weights and names the same results.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ModelError
from .atomic import atomic_write_bytes
from .catalog_entries import CatalogEntry, find_entry
from .installable import INSTALLABLE
from .paths import models_dir as user_models_dir  # the name the model store's callers use
from .registry import Registry

if TYPE_CHECKING:  # torch and the networks load with the first model, not with the model list (`stemdesk models`)
    import torch

    from ..core.estimators import AnyEstimator

DEFAULT_MODEL = "stemdesk-4stem"
CARD_FIELDS = ("id", "estimator", "config", "sources", "sample_rate", "weights_sha256", "training_data", "licenses")
CARD_LIMIT = 1 << 20  # a card is a small JSON file; refuse anything bigger than 1 MB
WEIGHTS = "weights.safetensors"
# The forms a model's weights may take, the plain file first: the one a model folder holds is its weights.
WEIGHT_FILES = (WEIGHTS, WEIGHTS + ".xz", WEIGHTS + ".gz")


def shipped_models_dir() -> Path:
    """The repository's models/ (editable installs, checkouts) or the copy installed under sys.prefix."""
    repo = Path(__file__).resolve().parents[2] / "models"
    if repo.is_dir():
        return repo
    return Path(sys.prefix) / "share" / "stemdesk" / "models"


def search_path(registry: Registry | None = None) -> list[Path]:
    """The folders searched for models; a registry (see `stemdesk.plugins`) adds its plugins' folders last."""
    extra = [Path(p) for p in os.environ.get("STEMDESK_MODELS_PATH", "").split(os.pathsep) if p]
    return [shipped_models_dir(), user_models_dir(), *extra, *(registry.model_folders if registry else ())]


@dataclass
class ModelCard:
    """The facts a model states about itself. ``raw`` keeps every field of card.json."""

    id: str
    estimator: str
    config: dict[str, Any]
    sources: list[str]
    sample_rate: int
    weights_sha256: str
    folder: Path
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def weights_path(self) -> Path:
        """This model's weights, or those of the model named by ``weights_from`` (a variant sharing weights)."""
        shared = self.raw.get("weights_from")
        if shared:
            # A card does not know the registry it was found with; a variant in a plugin's folder finds its base
            # beside it.
            beside = self.folder.parent / str(shared)
            try:
                return weights_file(find_model(str(shared)).folder)
            except ModelError:
                if (beside / "card.json").is_file():
                    return weights_file(beside)
                raise
        return weights_file(self.folder)

    @property
    def outputs(self) -> dict[str, list[str]] | None:
        """Optional merging of the estimator's sources into the stems written, e.g.
        {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}."""
        return self.raw.get("outputs")

    @property
    def summary(self) -> str:
        """What a user reads first about the model: what it separates, its quality in one line against a named
        reference, its speed, size and the licence of its weights. The card's own ``summary`` when it has one (the
        shipped and installable models), else made from the card's facts."""
        written = self.raw.get("summary")
        if isinstance(written, str) and written.strip():
            return written.strip()
        stems = ", ".join(self.outputs or self.sources)
        parent = self.split_parent
        parts = [f"Splits {parent} into {stems}." if parent else f"Separates {stems}."]
        scores = (self.raw.get("metrics") or {}).get("validation_usdr_median_db") or {}
        if isinstance(scores, dict) and scores:
            shown = ", ".join(f"{name} {float(value):.1f}" for name, value in scores.items())
            parts.append(f"Median uSDR on the validation songs: {shown} dB.")
        paper = self.raw.get("paper")
        if isinstance(paper, dict) and paper.get("reference") and parent is None:
            parts.append(f"A research model: {paper['reference']}, {paper.get('variant', '')}.".replace(", .", "."))
        parameters = self.raw.get("parameters")
        if isinstance(parameters, int):
            parts.append(f"{parameters / 1e6:.1f} M parameters.")
        data = self.raw.get("training_data")
        if isinstance(data, dict) and data.get("research_only"):
            parts.append("Weights: personal and research use only.")
        return " ".join(parts)

    @property
    def split_parent(self) -> str | None:
        """The stem a split model splits (its card's ``split.parent``: "vocals", "drums", or "mix" for any), or
        None for a model that separates songs."""
        split = self.raw.get("split")
        return str(split["parent"]) if isinstance(split, dict) and split.get("parent") else None

    @property
    def caution(self) -> str | None:
        """What a user must know before trusting the model, measured (its card's ``unheard.caution``: a split model
        that does worse than its no-harm baselines on songs it never heard); None for a model with nothing to say."""
        unheard = self.raw.get("unheard")
        text = unheard.get("caution") if isinstance(unheard, dict) else None
        return str(text) if text else None

    @property
    def caution_short(self) -> str | None:
        """The caution in a few words, for a menu entry beside the model's name."""
        unheard = self.raw.get("unheard")
        text = unheard.get("short") if isinstance(unheard, dict) else None
        return str(text) if text else None

    def identity(self) -> dict[str, Any]:
        """How certificates and batch records name the model: its id, weights and estimator."""
        return {"id": self.id, "weights_sha256": self.weights_sha256, "estimator": self.estimator}


def file_digest(path: Path, algorithm: str = "sha256"):
    """The hashlib object of a file's bytes, read in 1-MB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def sha256_file(path: Path) -> str:
    return file_digest(path).hexdigest()


def weights_file(folder: Path) -> Path:
    """The weights file a model folder holds, plain or compressed (`WEIGHT_FILES`); the plain name when none."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return folder / WEIGHTS


def read_weights(path: Path) -> bytes:
    """The safetensors bytes of a weights file, decompressed when it is ``.xz`` or ``.gz``. Raises ModelError
    for a compressed file that does not decompress (damaged or cut short)."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".xz"):
            return lzma.decompress(data, format=lzma.FORMAT_XZ)
        if path.name.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as error:
        raise ModelError(f'"{path}" does not decompress ({error}): the file is damaged. Reinstall the model.') from None
    return data


def compress_weights(folder: Path, form: str) -> Path:
    """Store a model folder's weights compressed (``form``: "xz" or "gz"), losslessly: the new file is checked to
    give back the same bytes before the plain one is removed. Returns the file written."""
    source = weights_file(folder)
    data = read_weights(source)
    if form == "xz":
        packed = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_SHA256, preset=9 | lzma.PRESET_EXTREME)
    elif form == "gz":
        packed = gzip.compress(data, compresslevel=9, mtime=0)
    else:
        raise ValueError(f"weights are compressed as xz or gz, not {form!r}")
    target = folder / f"{WEIGHTS}.{form}"
    atomic_write_bytes(target, packed)
    if read_weights(target) != data:
        target.unlink()
        raise ModelError(f"{target} did not decompress to the weights it was made from; the plain file is kept.")
    for name in WEIGHT_FILES:
        if folder / name != target:
            (folder / name).unlink(missing_ok=True)
    return target


def read_card(folder: Path) -> ModelCard:
    path = folder / "card.json"
    if not path.is_file():
        raise ModelError(f'Model folder "{folder}" has no card.json. Reinstall the model or remove the folder.')
    if path.stat().st_size > CARD_LIMIT:
        raise ModelError(f'"{path}" is larger than 1 MB, so it is not a model card. Remove the folder.')
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelError(f'"{path}" is not valid JSON ({error}). Reinstall the model.') from None
    if not isinstance(raw, dict):
        raise ModelError(f'"{path}" must hold a JSON object. Reinstall the model.')
    missing = [name for name in CARD_FIELDS if name not in raw]
    if missing:
        raise ModelError(f'Model card "{path}" lacks {", ".join(missing)}. Reinstall the model.')
    if not isinstance(raw["config"], dict) or not isinstance(raw["sources"], list):
        raise ModelError(f'Model card "{path}" has a malformed config or sources. Reinstall the model.')
    return ModelCard(
        id=str(raw["id"]),
        estimator=str(raw["estimator"]),
        config=raw["config"],
        sources=[str(s) for s in raw["sources"]],
        sample_rate=int(raw["sample_rate"]),
        weights_sha256=str(raw["weights_sha256"]),
        folder=folder,
        raw=raw,
    )


def list_models(include_tests: bool | None = None, registry: Registry | None = None) -> list[ModelCard]:
    """Every readable model on the search path; a later folder does not shadow an earlier id. Models whose card
    says ``"purpose": "tests"`` (tiny-4stem) are left out unless ``include_tests`` or the environment variable
    STEMDESK_SHOW_TEST_MODELS=1 asks for them; they still load by id. ``registry`` adds plugins' folders."""
    if include_tests is None:
        include_tests = os.environ.get("STEMDESK_SHOW_TEST_MODELS") == "1"
    seen: dict[str, ModelCard] = {}
    for root in search_path(registry):
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            # dot folders are installs still being written (see io/htdemucs.py)
            if folder.name.startswith("."):
                continue
            if (folder / "card.json").is_file() and folder.name not in seen:
                try:
                    seen[folder.name] = read_card(folder)
                except ModelError:
                    continue
    return [card for card in seen.values() if include_tests or card.raw.get("purpose") != "tests"]


def find_model(model_id: str, registry: Registry | None = None) -> ModelCard:
    if not model_id or "/" in model_id or "\\" in model_id or model_id.startswith("."):
        raise ModelError(f"{model_id!r} is not a model id.", setting="model")
    if "+" in model_id or "*" in model_id:  # the ensemble syntax of stemdesk.io.ensemble
        members = " or ".join(repr(part.partition("*")[0].strip()) for part in model_id.split("+"))
        raise ModelError(
            f"{model_id!r} names an ensemble of models, which can separate songs; this needs one model ({members})."
        )
    for root in search_path(registry):
        folder = root / model_id
        if (folder / "card.json").is_file():
            return read_card(folder)
    item = INSTALLABLE.get(model_id)
    if item is not None:  # each front end says how it installs one (the setting "install")
        raise ModelError(item.not_installed(), setting="install", value=model_id)
    entry = _catalog_entry(model_id)
    if entry is not None:  # a model of the catalog: installed the same way, each front end its own
        raise ModelError(entry.not_installed(), setting="install" if entry.runs else "model", value=model_id)
    raise ModelError(
        f"No model named {model_id!r} is installed (installed: {installed_summary(registry)}).", setting="model"
    )


def _catalog_entry(model_id: str) -> CatalogEntry | None:
    """The model catalog's entry ``model_id`` (`stemdesk.io.catalog_entries`), or None, also when the catalog cannot
    be read: the error about the model is then the plain one."""
    try:
        return find_entry(model_id)
    except ModelError:
        return None


def is_research(card: ModelCard) -> bool:
    """A research model (a paper's method trained from scratch: its card says ``"purpose": "research"``): listed
    apart from the models a user separates with (`stemdesk models --all`, counted in `installed_summary`)."""
    return card.raw.get("purpose") == "research"


def installed_summary(registry: Registry | None = None, limit: int = 6) -> str:
    """The installed models for an error message: the user's own first (imported, installed, trained), then the
    default and the other shipped ones, at most ``limit`` ids; the research models are counted, not named."""
    cards = list_models(registry=registry)
    shipped = shipped_models_dir().resolve()
    research = [card for card in cards if is_research(card)]
    rank = {"user": 0, "default": 1, "shipped": 2}

    def origin(card: ModelCard) -> str:
        if card.folder.parent.resolve() != shipped:
            return "user"
        return "default" if card.id == DEFAULT_MODEL else "shipped"

    ids = [card.id for card in sorted((c for c in cards if c not in research), key=lambda c: rank[origin(c)])]
    more = [f"{len(ids) - limit} more"] if len(ids) > limit else []
    if research:
        more.append(f"{len(research)} research model{'s' if len(research) > 1 else ''}")
    named = ", ".join(ids[:limit])
    if not more:
        return named or "none"
    return f"{named} and {' and '.join(more)}" if named else " and ".join(more)


def load_estimator(
    model: str | ModelCard,
    table: Mapping[str, type[AnyEstimator]] | None = None,
    registry: Registry | None = None,
) -> tuple[AnyEstimator, ModelCard]:
    """Build the card's estimator and load its verified safetensors weights (a model id is looked up with
    ``registry``'s folders too; ``table`` maps estimator names to classes, default the built-in ones)."""
    from ..core.estimators import BUILTIN_ESTIMATORS, build_estimator

    table = BUILTIN_ESTIMATORS if table is None else table
    card = model if isinstance(model, ModelCard) else find_model(model, registry)
    state = load_state(card)
    try:
        estimator = build_estimator(card.estimator, card.config, table)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"Model {card.id!r} cannot be built: {error}. It may need a newer StemDesk.") from None
    outputs = card.outputs
    if outputs is None and list(estimator.sources) != card.sources:
        raise ModelError(
            f"Model {card.id!r}: its card lists sources {card.sources} but its config gives "
            f"{list(estimator.sources)}. Reinstall the model."
        )
    if outputs is not None:
        merged = [s for group in outputs.values() for s in group]
        if list(outputs) != card.sources or sorted(merged) != sorted(estimator.sources):
            raise ModelError(
                f"Model {card.id!r}: its outputs {outputs} must use each of the estimator's sources "
                f"{list(estimator.sources)} once and be listed as its sources. Reinstall the model."
            )
    try:
        estimator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelError(
            f"Model {card.id!r}: the weights do not fit its estimator "
            f"({str(error).splitlines()[0]}). Reinstall the model."
        ) from None
    return estimator.eval(), card


HALF_LIMIT = 60000.0  # float16 overflows at 65504
INT8_SCALE = "::int8_scale"  # a stored int8 tensor's companion: its scale per index of the first dimension


def weights_bytes(estimator: AnyEstimator, half: bool = False, int8_from: int | None = None) -> tuple[bytes, str]:
    """The estimator's state as safetensors bytes and the storage used: "float32", or with ``half`` "float16"
    parameters (half the file; buffers such as batch-norm statistics stay float32, and loading casts everything
    back to float32). Parameters beyond float16's range keep the model float32. With ``int8_from`` (and ``half``),
    parameters of at least that many values are stored as int8 with a float32 scale per index of their first
    dimension (an output channel, or a transposed convolution's input channel): a quarter of float32, for the few
    largest tensors that make most of a big model's file ("float16+int8"; `load_state` restores float32)."""
    from safetensors.torch import save

    parameters = {name for name, _ in estimator.named_parameters()}
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in estimator.state_dict().items()}
    if half and all(float(state[name].abs().max()) < HALF_LIMIT for name in parameters if state[name].numel()):
        stored: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            if name not in parameters or not tensor.is_floating_point():
                stored[name] = tensor
            elif int8_from is not None and tensor.numel() >= int8_from and tensor.dim() >= 2:
                stored[name], stored[name + INT8_SCALE] = quantise_int8(tensor)
            else:
                stored[name] = tensor.half()
        return save(stored), "float16+int8" if any(k.endswith(INT8_SCALE) for k in stored) else "float16"
    return save(state), "float32"


def int8_threshold(estimator: AnyEstimator, limit_bytes: int) -> int | None:
    """The ``int8_from`` that keeps the float16 file (`weights_bytes`) within ``limit_bytes`` by storing the
    fewest, largest parameters as int8; None when float16 alone fits."""
    if len(weights_bytes(estimator, half=True)[0]) <= limit_bytes:
        return None
    for size in sorted({p.numel() for p in estimator.parameters() if p.dim() >= 2}, reverse=True):
        if len(weights_bytes(estimator, half=True, int8_from=size)[0]) <= limit_bytes:
            return size
    raise ValueError(f"the weights cannot fit {limit_bytes} bytes even with every matrix stored as int8")


def quantise_int8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one float32 scale per index of the first dimension: (int8 values, scales shaped to
    broadcast). ``values * scales`` is within half a step (scale / 2) of ``tensor``."""
    import torch

    flat = tensor.float().reshape(tensor.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    values = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
    return values, scale.reshape(-1, *([1] * (tensor.dim() - 1))).contiguous()


def dequantise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stored state with its int8 tensors back in float32 (their scale entries removed)."""
    out = {name: tensor for name, tensor in state.items() if not name.endswith(INT8_SCALE)}
    for key, scale in state.items():
        if key.endswith(INT8_SCALE):
            name = key[: -len(INT8_SCALE)]
            out[name] = state[name].float() * scale
    return out


def save_model(
    folder: Path,
    model_id: str,
    estimator: AnyEstimator,
    card: Mapping[str, Any],
    half: bool = False,
    int8_from: int | None = None,
) -> ModelCard:
    """Write weights.safetensors and card.json atomically; ``card`` adds the human facts (data, licences, metrics).
    ``half`` stores float16 parameters, ``int8_from`` the largest as int8 (see `weights_bytes`): the shipped models
    use them to stay git-sized."""
    from ..core.estimators import WaveformEstimator

    folder.mkdir(parents=True, exist_ok=True)
    weights, storage = weights_bytes(estimator, half, int8_from)
    digest = hashlib.sha256(weights).hexdigest()
    config = estimator.config()
    # measured for the weights it was measured with: weights trained further from them are not (core.precision)
    config.pop("bf16_measured", None)
    full = {
        "id": model_id,
        "estimator": estimator.kind,
        "config": config,
        "sources": list(estimator.sources),
        "sample_rate": (
            estimator.sample_rate if isinstance(estimator, WaveformEstimator) else estimator.stft_config.sample_rate
        ),
        "parameters": int(sum(p.numel() for p in estimator.parameters())),
        **dict(card),
        "weights_storage": storage,
        "weights_sha256": digest,
    }
    full.setdefault("training_data", "none")
    full.setdefault("licenses", {})
    # Weights first: a crash between the two renames leaves a card whose sha256 no longer matches, which
    # load_estimator reports, rather than a card that silently describes other weights.
    atomic_write_bytes(folder / WEIGHTS, weights)
    for stale in WEIGHT_FILES[1:]:  # an earlier model's compressed weights would no longer match the card
        (folder / stale).unlink(missing_ok=True)
    atomic_write_bytes(folder / "card.json", (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return read_card(folder)


# What a card says about its weights: `amend_card` never changes it.
WEIGHT_FACTS = (
    "id",
    "estimator",
    "config",
    "sources",
    "sample_rate",
    "parameters",
    "weights_storage",
    "weights_sha256",
)


def amend_card(folder: Path, facts: Mapping[str, Any]) -> ModelCard:
    """Add or replace the human facts of a model's card (training budget used, notes), atomically; the facts that
    describe its weights stay as they are. Returns the card as written."""
    changed = sorted(set(facts) & set(WEIGHT_FACTS))
    if changed:
        raise ValueError(f"amend_card changes the human facts only, not {changed}")
    card = read_card(folder)
    full = {**card.raw, **dict(facts)}
    atomic_write_bytes(folder / "card.json", (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return read_card(folder)


def load_state(card: ModelCard) -> dict[str, torch.Tensor]:
    """A model's weights as tensors, read from safetensors only after their sha256 matches the card."""
    weights = card.weights_path
    if not weights.is_file():
        raise ModelError(f'Model {card.id!r} has no weights.safetensors in "{card.folder}". Reinstall the model.')
    data = read_weights(weights)
    digest = hashlib.sha256(data).hexdigest()
    if digest != card.weights_sha256:
        raise ModelError(
            f"Model {card.id!r}: {weights.name} does not match the sha256 in its card "
            f"(expected {card.weights_sha256[:12]}…, found {digest[:12]}…). The file is damaged or was "
            "replaced; reinstall the model."
        )
    from safetensors.torch import load

    try:
        state = load(data)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for malformed headers
        raise ModelError(
            f"Model {card.id!r}: {weights.name} is not a valid safetensors file ({error}). Reinstall the model."
        ) from None
    return dequantise(state)


def remove_model(model_id: str) -> Path:
    """Delete a model from the user's models folder. Shipped models cannot be removed."""
    card = find_model(model_id)
    if card.folder.parent.resolve() != user_models_dir().resolve():
        raise ModelError(
            f"{model_id!r} ships with StemDesk (in {card.folder.parent}) and cannot be removed; "
            "only models in your models folder can."
        )
    for path in card.folder.iterdir():
        path.unlink()
    card.folder.rmdir()
    return card.folder


def save_variant(
    folder: Path, model_id: str, base: ModelCard, outputs: Mapping[str, list[str]], card: Mapping[str, Any]
) -> ModelCard:
    """A model that reuses ``base``'s weights (``weights_from``) and merges its sources into other stems."""
    if base.raw.get("weights_from"):
        raise ModelError(
            f"{base.id!r} already borrows its weights; make the variant from {base.raw['weights_from']!r}."
        )
    full = {key: value for key, value in base.raw.items() if key not in ("id", "metrics", "description")}
    full.update(dict(card))
    full.update(
        {
            "id": model_id,
            "sources": list(outputs),
            "outputs": {k: list(v) for k, v in outputs.items()},
            "weights_from": base.id,
            "weights_sha256": base.weights_sha256,
        }
    )
    atomic_write_bytes(folder / "card.json", (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return read_card(folder)
