"""The effects a mix can use, with parameters in real units and ranges that reject absurd values.

Each kind maps to a pedalboard plugin. The built-in kinds are `BUILTIN_EFFECTS`; plugins add kinds to the
`stemdesk.io.registry.Registry` a front end builds at start-up (see ``stemdesk.plugins``), and an effect is checked
against the registry it is read with (none: the built-ins only). A checked effect keeps its spec, so rendering,
automating or exporting it needs no registry. VST3 inserts are the kind ``"vst3"`` (see `stemdesk.mixer.vst3`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..core.errors import MixError
from ..io.registry import Registry


@dataclass(frozen=True)
class Param:
    unit: str
    low: float
    high: float
    default: float
    label: str = ""

    def check(self, effect: str, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MixError(
                f"{effect}.{name} must be a number in {self.unit} between {self.low:g} and "
                f"{self.high:g}, not {value!r}."
            )
        if not self.low <= value <= self.high:
            raise MixError(
                f"{effect}.{name} = {value:g} {self.unit} is out of range; use {self.low:g} to "
                f"{self.high:g} {self.unit}."
            )
        return float(value)


@dataclass(frozen=True)
class EffectSpec:
    """factory(params in real units, sample rate) -> a pedalboard plugin."""

    kind: str
    label: str
    params: dict[str, Param]
    factory: Callable[[dict[str, float]], Any]
    amount: str | None = None  # the parameter a single "amount" control (and MIDI) drives

    def defaults(self) -> dict[str, float]:
        return {name: p.default for name, p in self.params.items()}

    def check(self, params: dict[str, Any]) -> dict[str, float]:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise MixError(f"{self.kind} has no parameter {unknown[0]!r}; it has {', '.join(self.params)}.")
        values = self.defaults()
        values.update({name: self.params[name].check(self.kind, name, v) for name, v in params.items()})
        return values


def _plugin(name: str) -> Any:
    """pedalboard's plugin class ``name``, imported when the first effect is made (not with the command line)."""
    import pedalboard

    return getattr(pedalboard, name)


def _filter(name: str) -> Callable[[dict[str, float]], Any]:
    return lambda p: _plugin(name)(cutoff_frequency_hz=p["cutoff_hz"], gain_db=p["gain_db"], q=p["q"])


_Q = Param("", 0.1, 18.0, 0.707, "Q")
BUILTIN_EFFECTS: Mapping[str, EffectSpec] = MappingProxyType(
    {
        spec.kind: spec
        for spec in (
            EffectSpec(
                "gain",
                "Gain",
                {"gain_db": Param("dB", -60.0, 24.0, 0.0, "Gain")},
                lambda p: _plugin("Gain")(gain_db=p["gain_db"]),
                amount="gain_db",
            ),
            EffectSpec(
                "reverb",
                "Reverb",
                {
                    "room_size": Param("", 0.0, 1.0, 0.5, "Room size"),
                    "damping": Param("", 0.0, 1.0, 0.5, "Damping"),
                    "wet_db": Param("dB", -60.0, 0.0, -12.0, "Wet"),
                    "dry_db": Param("dB", -60.0, 0.0, 0.0, "Dry"),
                    "width": Param("", 0.0, 1.0, 1.0, "Width"),
                },
                lambda p: _plugin("Reverb")(
                    room_size=p["room_size"],
                    damping=p["damping"],
                    wet_level=10 ** (p["wet_db"] / 20),
                    dry_level=10 ** (p["dry_db"] / 20),
                    width=p["width"],
                ),
                amount="wet_db",
            ),
            EffectSpec(
                "compressor",
                "Compressor",
                {
                    "threshold_db": Param("dB", -60.0, 0.0, -18.0, "Threshold"),
                    "ratio": Param(":1", 1.0, 30.0, 4.0, "Ratio"),
                    "attack_ms": Param("ms", 0.1, 500.0, 10.0, "Attack"),
                    "release_ms": Param("ms", 1.0, 5000.0, 100.0, "Release"),
                },
                lambda p: _plugin("Compressor")(
                    threshold_db=p["threshold_db"],
                    ratio=p["ratio"],
                    attack_ms=p["attack_ms"],
                    release_ms=p["release_ms"],
                ),
                amount="threshold_db",
            ),
            EffectSpec(
                "low_shelf",
                "Low shelf",
                {
                    "cutoff_hz": Param("Hz", 20.0, 2000.0, 120.0, "Frequency"),
                    "gain_db": Param("dB", -24.0, 24.0, 0.0, "Gain"),
                    "q": _Q,
                },
                _filter("LowShelfFilter"),
                amount="gain_db",
            ),
            EffectSpec(
                "high_shelf",
                "High shelf",
                {
                    "cutoff_hz": Param("Hz", 1000.0, 20000.0, 8000.0, "Frequency"),
                    "gain_db": Param("dB", -24.0, 24.0, 0.0, "Gain"),
                    "q": _Q,
                },
                _filter("HighShelfFilter"),
                amount="gain_db",
            ),
            EffectSpec(
                "peak",
                "Peak EQ",
                {
                    "cutoff_hz": Param("Hz", 20.0, 20000.0, 1000.0, "Frequency"),
                    "gain_db": Param("dB", -24.0, 24.0, 0.0, "Gain"),
                    "q": _Q,
                },
                _filter("PeakFilter"),
                amount="gain_db",
            ),
            EffectSpec(
                "limiter",
                "Limiter",
                {
                    "threshold_db": Param("dB", -30.0, 0.0, -1.0, "Threshold"),
                    "release_ms": Param("ms", 1.0, 2000.0, 100.0, "Release"),
                },
                lambda p: _plugin("Limiter")(threshold_db=p["threshold_db"], release_ms=p["release_ms"]),
                amount="threshold_db",
            ),
            EffectSpec(
                "delay",
                "Delay",
                {
                    "delay_seconds": Param("s", 0.001, 4.0, 0.25, "Time"),
                    "feedback": Param("", 0.0, 0.95, 0.3, "Feedback"),
                    "mix": Param("", 0.0, 1.0, 0.25, "Mix"),
                },
                lambda p: _plugin("Delay")(delay_seconds=p["delay_seconds"], feedback=p["feedback"], mix=p["mix"]),
                amount="mix",
            ),
        )
    }
)


def effects_of(registry: Registry | None = None) -> Mapping[str, EffectSpec]:
    """The effect kinds a registry offers (its built-ins included); without one, the built-ins."""
    return registry.effects if registry is not None else BUILTIN_EFFECTS


@dataclass
class Effect:
    """One insert: a kind from a registry's effects (or "vst3"), its parameters in real units, and a bypass switch.

    For "vst3", ``path`` is the plugin bundle and ``params`` are the plugin's own parameter names and values.
    ``spec`` is the kind's spec once `validated` found it (not saved: a file names the kind only).
    """

    kind: str
    params: dict[str, float] = field(default_factory=dict)
    bypass: bool = False
    path: str | None = None
    spec: EffectSpec | None = field(default=None, repr=False, compare=False)

    def known_spec(self) -> EffectSpec | None:
        """The spec this effect was checked against, else the built-in one of its kind (None: unknown or vst3)."""
        if self.spec is not None and self.spec.kind == self.kind:
            return self.spec
        return BUILTIN_EFFECTS.get(self.kind)

    def validated(self, registry: Registry | None = None) -> Effect:
        """This effect checked against ``registry``'s kinds (default: the built-ins), carrying its spec."""
        if self.kind == "vst3":
            if not self.path:
                raise MixError("A vst3 effect needs the path of the plugin (.vst3).")
            for name, value in self.params.items():
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise MixError(f"vst3 parameter {name!r} must be a number or text, not {value!r}.")
            return self
        known = effects_of(registry)
        spec = known.get(self.kind) or self.known_spec()
        if spec is None:
            raise MixError(f"Unknown effect {self.kind!r}; use one of {', '.join(sorted([*known, 'vst3']))}.")
        return Effect(self.kind, spec.check(self.params), bool(self.bypass), spec=spec)

    def plugin(self):
        """A fresh pedalboard plugin for this effect (validated first)."""
        effect = self.validated()
        if effect.kind == "vst3":
            from .vst3 import load_vst3

            assert effect.path is not None  # validated(): a VST3 effect names its plugin file
            return load_vst3(effect.path, effect.params)
        assert effect.spec is not None  # validated(): every other kind carries its spec
        return effect.spec.factory(effect.params)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"kind": self.kind, "params": dict(self.params)}
        if self.bypass:
            data["bypass"] = True
        if self.path:
            data["path"] = self.path
        return data

    @classmethod
    def from_dict(cls, data: Any, registry: Registry | None = None) -> Effect:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise MixError(f'An effect must be an object with a "kind", not {str(data)[:60]!r}.')
        params = data.get("params", {})
        if not isinstance(params, dict) or len(params) > 256:
            raise MixError(f"The parameters of effect {data['kind']!r} must be an object of at most 256 values.")
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise MixError('An effect\'s "path" must be text.')
        return cls(data["kind"], dict(params), bool(data.get("bypass", False)), path).validated(registry)
