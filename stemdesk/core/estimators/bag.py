"""A bag of waveform estimators, combined as Demucs combines a ``BagOfModels`` (htdemucs_ft: four HTDemucs, each
taken for one stem).

Demucs's ``apply_model`` runs every sub-model over the whole song (its own segments, a quarter overlap, triangular
weights), multiplies each one's stems by its weight for that stem, sums them and divides each stem by the sum of
its weights. Chunking and that weighted mean are both linear, so when the sub-models share their segment (Demucs's
bags do, and a bag's ``segment`` sets it for all) the same sum taken segment by segment is the same result: the bag
is one waveform estimator with its members' segment, overlap and window, and the chunker and the null rule treat it
as they treat a single HTDemucs.

A member whose weight for a stem is 0 adds nothing to it (its estimate of that stem is not used); a member whose
weights are all 0 is not run. HTDemucs predicts its stems together, so a member is run once for the stems it is
weighted for: htdemucs_ft's identity weights need every member once per segment, four networks instead of one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .base import WaveformEstimator


def _member(spec: Mapping[str, Any], inherited: Mapping[str, Any]) -> WaveformEstimator:
    """One member, built from the registry (its config taking the bag's ``inherited`` facts it does not state): it
    must predict waveforms."""
    from . import build_estimator  # the registry imports this module

    if not isinstance(spec, Mapping) or "kind" not in spec or not isinstance(spec.get("config"), Mapping):
        raise ValueError('each member of a bag is {"kind": registry name, "config": its config}')
    member = build_estimator(str(spec["kind"]), {**inherited, **spec["config"]})
    if not isinstance(member, WaveformEstimator):
        raise ValueError(f"a bag's members predict waveforms; {spec['kind']!r} estimates masks")
    return member


def check_bag(
    sources: Sequence[Sequence[str]],
    rates: Sequence[int],
    channels: Sequence[int],
    segments: Sequence[int],
    weights: Sequence[Sequence[float]],
    names: Sequence[str] | None = None,
) -> None:
    """What a bag of members with these facts needs, as Demucs's ``BagOfModels`` asserts it (the same sources in
    the same order, one sample rate, one channel count; one weight per member and source, a non-zero sum for each
    source) and what StemDesk's chunker adds (one segment). Raises ValueError saying which members differ."""
    names = list(names) if names is not None else [f"member {i + 1}" for i in range(len(sources))]
    if not sources:
        raise ValueError("a bag holds at least one model")

    def differ(what: str, values: Sequence[Any]) -> str:
        return f"its models {what}: " + "; ".join(f"{name}: {value}" for name, value in zip(names, values))

    first = list(sources[0])
    if any(list(s) != first for s in sources[1:]):
        raise ValueError(differ("separate different stems", [", ".join(s) for s in sources]))
    if len(set(rates)) != 1:
        raise ValueError(differ("run at different sample rates", [f"{r} Hz" for r in rates]))
    if len(set(channels)) != 1:
        raise ValueError(differ("take different channel counts", list(channels)))
    if len(set(segments)) != 1:
        raise ValueError(differ("take different segments", [f"{s} samples" for s in segments]))
    if len(weights) != len(sources) or any(len(row) != len(first) for row in weights):
        shape = f"{len(weights)} rows of " + "/".join(str(len(row)) for row in weights)
        raise ValueError(
            f"its weights must be one row per model ({len(sources)}) with one weight per stem ({len(first)}: "
            f"{', '.join(first)}), not {shape}"
        )
    if any(not math.isfinite(float(w)) for row in weights for w in row):
        raise ValueError("its weights must be finite numbers")
    for index, stem in enumerate(first):
        if sum(float(row[index]) for row in weights) == 0:
            raise ValueError(f"its weights for {stem} sum to 0, so that stem would be 0 / 0")


def check_members(
    members: Sequence[WaveformEstimator], weights: Sequence[Sequence[float]], names: Sequence[str] | None = None
) -> None:
    """`check_bag` on built members' own facts."""
    check_bag(
        [m.sources for m in members],
        [m.sample_rate for m in members],
        [m.channels for m in members],
        [m.segment for m in members],
        weights,
        names,
    )


class Bag(WaveformEstimator):
    """``members``: [{"kind": registry name, "config": its config}, …] (waveform estimators of the same sources,
    rate, channels and segment); ``weights``: one row per member, one weight per source (default all ones).
    ``forward``: audio (batch, channels, length ≤ segment) → Σₖ wₖₛ · memberₖ(audio)ₛ / Σₖ wₖₛ for each source s.
    The sources, rate, channels and segment are the members'; given, they must agree (a member's config that does
    not state the sources, rate or channels takes the bag's)."""

    kind: ClassVar[str] = "bag"

    def __init__(
        self,
        members: Sequence[Mapping[str, Any]],
        weights: Sequence[Sequence[float]] | None = None,
        sources: Sequence[str] | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
        segment: int | None = None,
    ):
        inherited: dict[str, Any] = {"sample_rate": sample_rate, "channels": channels}
        inherited = {key: value for key, value in inherited.items() if value is not None}
        if sources is not None:
            inherited["sources"] = list(sources)
        built = [_member(spec, inherited) for spec in members]
        if not built:
            raise ValueError("a bag holds at least one model")
        first = built[0]
        rows = [[float(w) for w in row] for row in (weights or [[1.0] * len(first.sources)] * len(built))]
        check_members(built, rows)
        if sources is not None and list(sources) != list(first.sources):
            raise ValueError(f"a bag's sources are its members' ({', '.join(first.sources)}), not {list(sources)}")
        stated = {"sample_rate": sample_rate, "channels": channels, "segment": segment}
        for key, value in stated.items():
            if value is not None and int(value) != getattr(first, key):
                raise ValueError(f"a bag's {key} is its members' ({getattr(first, key)}), not {value}")
        super().__init__(
            first.sources,
            first.sample_rate,
            first.channels,
            first.segment,
            members=[{"kind": m.kind, "config": m.config()} for m in built],
            weights=rows,
        )
        self.members = nn.ModuleList(built)
        self.weights = rows
        # what each stem is divided by, and which members are run at all
        self.totals = [sum(row[s] for row in rows) for s in range(len(first.sources))]
        self.used = [any(w != 0 for w in row) for row in rows]

    @property
    def reduced_precision_measured(self) -> bool:
        """As for its members: reduced precision is chosen for the bag where it would be for each of them."""
        return all(getattr(m, "reduced_precision_measured", False) for m in self.members)

    def reduced_precision_modules(self) -> list[nn.Module]:
        parts: list[nn.Module] = []
        for member in self.members:
            named = getattr(member, "reduced_precision_modules", None)
            parts += list(named()) if callable(named) else []
        return parts

    def forward(self, audio: Tensor) -> Tensor:
        """Demucs's order of operations: each member's stems times its weights, summed, divided by the sums."""
        total: Tensor | None = None
        for member, row, used in zip(self.members, self.weights, self.used):
            if not used:
                continue
            stems = member(audio)
            weighted = torch.stack(
                [stems[:, s] * w if w != 0 else torch.zeros_like(stems[:, s]) for s, w in enumerate(row)], dim=1
            )
            total = weighted if total is None else total + weighted
        assert total is not None, "check_bag refuses a bag with no weight"
        return torch.stack([total[:, s] / t for s, t in enumerate(self.totals)], dim=1)
