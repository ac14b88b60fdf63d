"""Ensembles of installed models, named by one model string wherever a model id goes: ``A+B`` averages the two
models with equal weights, ``A*2+B`` gives A twice B's weight. The averaging itself is `stemdesk.core.ensemble`;
this module finds the members' cards and checks, before any weights are loaded, that they can be averaged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..core.ensemble import common_stems
from ..core.errors import ModelError
from .model_store import ModelCard, find_model
from .registry import Registry

JOIN = "+"
WEIGHT = "*"


def is_ensemble(model: str) -> bool:
    """True for a model string that names several models (or weighs one)."""
    return JOIN in model or WEIGHT in model


def parse_ensemble(model: str) -> list[tuple[str, float]]:
    """``"A*2+B"`` → ``[("A", 2.0), ("B", 1.0)]``. Raises ModelError for an empty member, a weight that is not a
    positive number, or a model named twice."""
    members: list[tuple[str, float]] = []
    for part in model.split(JOIN):
        name, _, weight_text = part.strip().partition(WEIGHT)
        name = name.strip()
        if not name:
            raise ModelError(
                f"{model!r} names an empty model: write an ensemble as model ids joined by +, "
                "for example stemdesk-4stem+htdemucs (or stemdesk-4stem*2+htdemucs to weigh one more)."
            )
        weight = 1.0
        if weight_text:
            try:
                weight = float(weight_text)
            except ValueError:
                weight = math.nan
            if not (math.isfinite(weight) and weight > 0):
                raise ModelError(
                    f"{part.strip()!r} in {model!r}: the weight after * must be a number more than 0, "
                    "for example stemdesk-4stem*2+htdemucs."
                )
        if name in [known for known, _ in members]:
            raise ModelError(
                f"{name!r} appears twice in {model!r}. Name each model once and give it a weight instead "
                f"({name}*2+...)."
            )
        members.append((name, weight))
    return members


def ensemble_id(members: list[tuple[str, float]]) -> str:
    """The ensemble's canonical model string: weights of 1 left out, ``A*2+B``."""
    return JOIN.join(name if weight == 1 else f"{name}{WEIGHT}{weight:g}" for name, weight in members)


@dataclass
class EnsembleCard:
    """What an ensemble is made of, read from its members' cards. It stands where a `ModelCard` does for a
    separation: ``id`` (the canonical model string), ``sources`` (the stems it writes), ``weights_sha256`` (a hash
    of the members' weight hashes and weights: it changes when any member or weight does), `identity`."""

    id: str
    members: list[ModelCard]
    weights: list[float]
    sources: list[str]
    estimator: str = "ensemble"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def outputs(self) -> None:
        """An ensemble merges no sources of its own (each member's card merges its own)."""
        return None

    @property
    def weights_sha256(self) -> str:
        parts = [[card.id, card.weights_sha256, weight] for card, weight in zip(self.members, self.weights)]
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, Any]:
        """How certificates and batch records name the ensemble: its id and each member with its weight."""
        return {
            "id": self.id,
            "estimator": self.estimator,
            "weights_sha256": self.weights_sha256,
            "members": [{**card.identity(), "weight": weight} for card, weight in zip(self.members, self.weights)],
        }

    def describe(self) -> str:
        """One line for people: "ensemble of A (weight 2) and B"."""
        named = [
            card.id + (f" (weight {weight:g})" if weight != 1 else "")
            for card, weight in zip(self.members, self.weights)
        ]
        return "ensemble of " + ", ".join(named[:-1]) + " and " + named[-1]


def find_ensemble(model: str, registry: Registry | None = None) -> EnsembleCard:
    """The cards of an ensemble's members, checked: every one installed, and all separating the same stems."""
    members = parse_ensemble(model)
    if len(members) < 2:
        raise ModelError(
            f"{model!r} weighs a single model, which changes nothing: name two or more models joined by +, "
            f"or just {members[0][0]!r}."
        )
    cards = [find_model(name, registry) for name, _ in members]
    try:
        sources = common_stems([card.sources for card in cards], [card.id for card in cards])
    except ValueError as error:
        raise ModelError(
            f"Cannot average {ensemble_id(members)}: {error}. Choose models with the same stems; `stemdesk models` "
            "lists what each separates."
        ) from None
    return EnsembleCard(ensemble_id(members), cards, [weight for _, weight in members], list(sources))


def find_card(model: str, registry: Registry | None = None) -> ModelCard | EnsembleCard:
    """The card of a model string: one installed model's, or an ensemble's (``A+B``, ``A*2+B``)."""
    return find_ensemble(model, registry) if is_ensemble(model) else find_model(model, registry)
