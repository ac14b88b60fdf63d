"""Function-preserving widening of a trained BiLSTM mask net (Net2Net, Chen, Goodfellow & Shlens 2016).

An `OpenUnmix` of ``hidden`` units becomes one of ``k × hidden`` units that computes the same masks: every hidden
unit (after the first dense layer, in each direction of each LSTM layer, after the second dense layer) is copied
k times, and every weight leaving a unit is split among its copies with shares that sum to one. The copies carry
the same values, so each layer after them sees what it saw before. The shares differ a little per weight (``noise``)
so that the copies get different gradients and can learn different things; equal shares would keep them equal for
ever. Training then starts from the trained model with room to learn more, instead of from scratch.

`refine_cascade` grows a cascade's second stage (or its vocal U-Net) the other way: it keeps the stage as it is and puts a
band-split correction of its logits on top (`stemdesk.core.estimators.refined`), which also starts by computing the
same masks. `cut_cascade_second` drops that correction's bands above a frequency after training: its time grows with its
bands, and the shipped default's bought nothing measurable above 2.8 kHz.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

GATES = 4  # an LSTM's weight rows: input, forget, cell and output gates, in PyTorch's order


def _split(weight: Tensor, src: list[int], copies: int, noise: float, generator: torch.Generator) -> Tensor:
    """The columns of ``weight`` (rows × old inputs) for inputs widened by ``src`` (each new input's old input,
    each old input ``copies`` times): each old column's weights shared among its copies, per row, summing to it."""
    index = torch.tensor(src)
    share = 1.0 / copies + noise * (
        torch.rand(weight.shape[0], len(src), generator=generator, dtype=torch.float64) - 0.5
    )
    total = torch.zeros(weight.shape[0], weight.shape[1], dtype=torch.float64).index_add_(1, index, share)
    share = share - (total[:, index] - 1.0) / copies  # each old column's shares sum to exactly one again
    return (weight.double()[:, index] * share).to(weight.dtype)


def _gate_rows(units: list[int], old_units: int) -> list[int]:
    """The rows of an LSTM weight or bias (four gate blocks of ``old_units``) for units widened by ``units``."""
    return [gate * old_units + unit for gate in range(GATES) for unit in units]


def _check_width(hidden: int, new_hidden: int) -> None:
    if new_hidden <= hidden or new_hidden % hidden or hidden % 2:
        raise ValueError(f"can widen {hidden} units only to a larger multiple of {hidden} (asked for {new_hidden})")


def check_widening(second: dict, new_hidden: int) -> None:
    """ValueError unless a cascade's ``second`` entry ({"kind", "config"}) is a plain BiLSTM stage (open_unmix) that
    can be widened to ``new_hidden`` units."""
    if second["kind"] != "open_unmix":
        raise ValueError(f"the second stage is {second['kind']!r}; only a plain BiLSTM stage (open_unmix) is widened")
    if second["config"].get("trunk", "lstm") != "lstm":
        raise ValueError("only a BiLSTM second stage can be widened")
    _check_width(int(second["config"]["hidden"]), new_hidden)


def widen_open_unmix(
    state: dict[str, Tensor],
    hidden: int,
    layers: int,
    new_hidden: int,
    noise: float = 0.1,
    seed: int = 0,
) -> dict[str, Tensor]:
    """The state of an LSTM `OpenUnmix` of ``hidden`` units and ``layers`` layers, widened to ``new_hidden`` units (a
    multiple of ``hidden``): the same function, up to float rounding. ``noise``: how far a copy's share of a weight
    may stray from 1/k (the shares still sum to one)."""
    _check_width(hidden, new_hidden)
    copies = new_hidden // hidden
    generator = torch.Generator().manual_seed(seed)
    half, new_half = hidden // 2, new_hidden // 2  # units per direction
    dense = [i % hidden for i in range(new_hidden)]  # fc1's and fc2's outputs (and their batch norms)
    direction = [j % half for j in range(new_half)]  # one direction's LSTM units
    trunk = direction + [half + j for j in direction]  # a bidirectional layer's output, forward then backward
    out = dict(state)

    def split(weight: Tensor, src: list[int]) -> Tensor:
        return _split(weight, src, copies, noise, generator)

    out["fc1.weight"] = state["fc1.weight"][dense]
    for norm in ("bn1", "bn2"):
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{norm}.{name}"] = state[f"{norm}.{name}"][dense]
    rows = _gate_rows(direction, half)  # every LSTM weight's and bias's rows, the same in each layer
    for layer in range(layers):
        heard = dense if layer == 0 else trunk
        for suffix in ("", "_reverse"):
            key = f"trunk.{{}}_l{layer}{suffix}"
            out[key.format("weight_ih")] = split(state[key.format("weight_ih")][rows], heard)
            out[key.format("weight_hh")] = split(state[key.format("weight_hh")][rows], direction)
            for bias in ("bias_ih", "bias_hh"):
                out[key.format(bias)] = state[key.format(bias)][rows]
    skip = dense + [hidden + i for i in trunk]  # fc2 hears [fc1's output, the trunk's output]
    out["fc2.weight"] = split(state["fc2.weight"][dense], skip)
    out["fc3.weight"] = split(state["fc3.weight"], dense)
    return out


def widen_cascade_second(
    state: dict[str, Tensor], cascade: dict, new_hidden: int, noise: float = 0.1, seed: int = 0
) -> tuple[dict[str, Tensor], dict]:
    """A cascade's state and its ``second`` entry with that stage widened to ``new_hidden`` units (``cascade``: the
    cascade's config); the first stage is untouched."""
    entry = cascade["second"]
    check_widening(entry, new_hidden)
    second = entry["config"]
    prefix = "second."
    inner = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    hidden, layers = int(second["hidden"]), int(second["layers"])
    wide = widen_open_unmix(inner, hidden, layers, new_hidden, noise, seed)
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    out.update({prefix + k: v for k, v in wide.items()})
    return out, {**entry, "config": {**second, "hidden": new_hidden}}


def refine_cascade(
    state: dict[str, Tensor], cascade: dict, seed: int = 0, stack: bool = False, stage: str = "second", **refiner: Any
) -> tuple[dict[str, Tensor], dict]:
    """A cascade's state and its ``stage`` entry with a band-split correction (`Refined`) put on that stage. By default
    the second stage:
    the stage's weights become the correction's base ("second." → "second.base."), and the correction starts fresh
    from ``seed`` with its heads at zero, so the new cascade computes the old one's masks exactly. ``cascade``: the
    cascade's config; ``refiner``: the correction's settings (dim, dilations, bands, max_freq, …) instead of its
    defaults. A stage that already carries a correction gets a second one on top only with ``stack``: the first
    correction, trained, becomes part of the new one's base.

    ``stage="first"`` corrects the first stage instead (the vocal U-Net: the lead's mask, which also decides what the
    second stage hears): the U-Net then gives logits (mask "softmax"; with its residual source the softmax over
    [logit, 0] is its sigmoid mask, so the masks are the same to rounding) and the correction changes them."""
    from stemdesk.core.estimators import build_estimator

    if stage not in ("first", "second"):
        raise ValueError(f'a cascade\'s stages are "first" and "second", not {stage!r}')
    entry = cascade[stage]
    if entry["kind"] == "refined" and not stack:
        raise ValueError(f"the {stage} stage already has a correction (stack=True puts another on top of it)")
    base, own = entry, {}
    if stage == "second":
        shared = {k: cascade[k] for k in ("sources", "stft", "channels") if k in cascade}
    else:  # the cascade gives its first stage the STFT and channels only: the stage's entry names its own sources
        shared = {k: cascade[k] for k in ("stft", "channels") if k in cascade}
        own = {k: entry["config"][k] for k in ("sources", "residual") if k in entry["config"]}
        if entry["kind"] != "refined":
            if entry["config"].get("mask") != "sigmoid" or not own.get("residual"):
                raise ValueError(
                    "a first stage is corrected when it gives one sigmoid mask and its complement (residual)"
                )
            base = {**entry, "config": {**entry["config"], "mask": "softmax"}}
    config = {**own, **refiner, "base": {"kind": base["kind"], "config": base["config"]}}
    torch.manual_seed(seed)
    fresh = build_estimator("refined", {**shared, **config}).state_dict()
    prefix = f"{stage}."
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    out.update({f"{prefix}base.{k[len(prefix) :]}": v for k, v in state.items() if k.startswith(prefix)})
    out.update({prefix + k: v for k, v in fresh.items() if not k.startswith("base.")})
    return out, {"kind": "refined", "config": config}


def check_cut(second: dict, max_freq: float) -> None:
    """ValueError unless a cascade's ``second`` entry ({"kind", "config"}) carries a band-split correction that
    reaches above ``max_freq`` Hz, so that cutting it there leaves some of its bands."""
    if second["kind"] != "refined":
        raise ValueError(
            f"the second stage has no correction to cut (it is {second['kind']!r}, with no band-split correction)"
        )
    top = float(second["config"].get("max_freq", 16000.0))
    if not 0 < max_freq < top:
        raise ValueError(f"the correction reaches {top:g} Hz; cut below that, not at {max_freq:g} Hz")


def cut_cascade_second(state: dict[str, Tensor], cascade: dict, max_freq: float) -> tuple[dict[str, Tensor], dict]:
    """A cascade's state and its ``second`` entry with the second stage's band-split correction cut to its bands
    below ``max_freq`` Hz: the weights of the bands above are dropped and the stage's own logits stand there.

    The bands are fixed by (width, up to bin) pairs from the bottom, so a lower ``max_freq`` keeps a prefix of them
    (the band that holds the new top bin may end above it: its missing bins are silent, as at any top). The kept
    bands keep their weights; only the band convolutions of the top bands lose their neighbours above. Whether the
    cut model is as good is for validation to say: the shipped default lost nothing measurable cut at 2756 Hz."""
    from stemdesk.core.estimators import build_estimator

    entry = cascade["second"]
    check_cut(entry, max_freq)
    config = entry["config"]
    shared = {k: cascade[k] for k in ("sources", "stft", "channels") if k in cascade}
    new_entry = {"kind": "refined", "config": {**config, "max_freq": float(max_freq)}}
    old = build_estimator("refined", {**shared, **config})
    new = build_estimator("refined", {**shared, **new_entry["config"]})
    for (start, width, count), (old_start, old_width, old_count) in zip(new.groups, old.groups, strict=False):
        if (start, width) != (old_start, old_width) or count > old_count:  # band_groups keeps a prefix
            raise AssertionError(
                f"band group {start, width, count} is not a prefix of {old_start, old_width, old_count}"
            )
    prefix = "second."
    out = {k: v for k, v in state.items() if not k.startswith(prefix) or k.startswith(prefix + "base.")}
    for name, shape in ((k, v.shape) for k, v in new.state_dict().items() if not k.startswith("base.")):
        kept = state[prefix + name][tuple(slice(0, n) for n in shape)]  # per-group tensors: the first bands
        out[prefix + name] = kept.clone()
    return out, new_entry
