"""A remix as data: per-stem gain, pan, mute, solo, sends and inserts, plus a master chain, and the key and tempo the
whole mix plays at. JSON in and out.

Files from users are untrusted: `Mix.from_dict` checks every field's type and range and the size of every list, so a
preset with absurd values fails with a message naming the field instead of producing a blast of noise.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import MixError
from ..io.names import RESERVED_NAMES, STRIP_CONTROLS  # a split stem's child is a strip "<parent>/<child>"
from ..io.registry import Registry
from .effects import Effect

MIX_VERSION = 2  # 2: semitones and tempo; a mix that keeps the song's key and tempo is still written as 1
MIX_KEYS = frozenset(
    {"stemdesk_mix", "channels", "buses", "master", "master_gain_db", "automation", "semitones", "tempo"}
)
MAX_MIX_BYTES = 1 << 20
MAX_EFFECTS = 32
GAIN_RANGE = (-120.0, 24.0)  # dB; -120 is treated as silence in the UI, mute is the exact off switch
PRESETS = ("karaoke", "karaoke-backing", "acappella", "vocal-up", "vocal-down", "drumless")
FADER_RANGE = (-60.0, 12.0)  # dB, what a fader (or a MIDI controller) spans
MAX_POINTS = 100_000
SWITCHES = ("mute", "solo")
# the key in semitones (fractions tune a detuned recording) and the tempo as a ratio of the song's (0.5: half speed):
# controls that hold for the whole song, never automated
KEY_TEMPO = ("master/semitones", "master/tempo")
# The key and tempo changes stemdesk.mixer.keytempo's buffers are sized for: its varispeed reads at half to twice
# the speed, and its vocoder stretches by a quarter to four times.
SEMITONES_RANGE = (-12.0, 12.0)
TEMPO_RANGE = (0.5, 2.0)


def _number(where: str, value: Any, low: float, high: float, unit: str = "", setting: str | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise MixError(
            f"{where} must be a number between {low:g} and {high:g}{' ' + unit if unit else ''}, not {value!r}.",
            setting=setting,
        )
    return float(value)


def _effects(where: str, data: Any, registry: Registry | None = None) -> list[Effect]:
    if not isinstance(data, list) or len(data) > MAX_EFFECTS:
        raise MixError(f"{where} must be a list of at most {MAX_EFFECTS} effects.")
    return [Effect.from_dict(item, registry) for item in data]


@dataclass
class Channel:
    """One stem's strip. Gain in dB, pan in -1 (left) .. +1 (right), sends in dB to named buses."""

    gain_db: float = 0.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False
    effects: list[Effect] = field(default_factory=list)
    sends: dict[str, float] = field(default_factory=dict)

    def is_unity(self) -> bool:
        """True when the strip passes its stem through unchanged (the null-sum case)."""
        return (
            self.gain_db == 0.0
            and self.pan == 0.0
            and not self.mute
            and not self.sends
            and all(e.bypass for e in self.effects)
        )

    def to_dict(self) -> dict:
        return {
            "gain_db": self.gain_db,
            "pan": self.pan,
            "mute": self.mute,
            "solo": self.solo,
            "effects": [e.to_dict() for e in self.effects],
            "sends": dict(self.sends),
        }

    @classmethod
    def from_dict(cls, name: str, data: Any, registry: Registry | None = None) -> Channel:
        if not isinstance(data, dict):
            raise MixError(f"Channel {name!r} must be an object.")
        unknown = sorted(set(data) - {"gain_db", "pan", "mute", "solo", "effects", "sends"})
        if unknown:
            raise MixError(f"Channel {name!r} has an unknown field {unknown[0]!r}.")
        sends = data.get("sends", {})
        if not isinstance(sends, dict) or len(sends) > MAX_EFFECTS:
            raise MixError(f"Channel {name!r}: sends must be an object of bus name to dB.")
        return cls(
            gain_db=_number(f"{name}.gain_db", data.get("gain_db", 0.0), *GAIN_RANGE, "dB"),
            pan=_number(f"{name}.pan", data.get("pan", 0.0), -1.0, 1.0),
            mute=bool(data.get("mute", False)),
            solo=bool(data.get("solo", False)),
            effects=_effects(f"{name}.effects", data.get("effects", []), registry),
            sends={str(bus): _number(f"{name}.sends.{bus}", db, *GAIN_RANGE, "dB") for bus, db in sends.items()},
        )


@dataclass
class Mix:
    """channels: stem name -> Channel (stems without an entry play at unity). buses: send-return chains.

    A stem split by a split model (`stemdesk.jobs.split`) is played as its children, strips named
    ``"vocals/lead"``, ``"vocals/backing"``; the parent's channel (``"vocals"``) is then their group, as a folder
    track in a DAW: its fader, pan, mute, solo and effects act on the children's sum. So a mix made before the split
    (the vocal level, karaoke) means the same after it."""

    channels: dict[str, Channel] = field(default_factory=dict)
    buses: dict[str, list[Effect]] = field(default_factory=dict)
    master: list[Effect] = field(default_factory=list)
    master_gain_db: float = 0.0
    # control -> [(seconds, value), ...] sorted by time; see `set_control` for the control names
    automation: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # the key and tempo everything plays at, applied after the mix (`stemdesk.mixer.keytempo`)
    semitones: float = 0.0
    tempo: float = 1.0

    @property
    def changes_key_or_tempo(self) -> bool:
        return self.semitones != 0.0 or self.tempo != 1.0

    def describe_key_tempo(self) -> str:
        """The key and tempo in words: "+2 semitones, 80 % tempo"; "" for the song's own."""
        words = []
        if self.semitones:
            words.append(f"{self.semitones:+g} semitone{'' if abs(self.semitones) == 1 else 's'}")
        if self.tempo != 1.0:
            words.append(f"{self.tempo * 100:g} % tempo")
        return ", ".join(words)

    def channel(self, name: str) -> Channel:
        return self.channels.setdefault(name, Channel())

    @property
    def vocal_db(self) -> float:
        return self.channels["vocals"].gain_db if "vocals" in self.channels else 0.0

    @vocal_db.setter
    def vocal_db(self, value: float) -> None:
        self.channel("vocals").gain_db = _number("vocal level", value, *GAIN_RANGE, "dB")

    def audible(self, name: str) -> bool:
        """Whether strip ``name`` lets its sound through: not muted, and nothing is soloed or it is on a soloed
        path (soloed itself, a child of a soloed group, or the group of a soloed child). A child is heard when it
        and its group are audible: see `heard`."""
        channel = self.channels.get(name, Channel())
        if channel.mute:
            return False
        soloed = {n for n, c in self.channels.items() if c.solo}
        return (
            not soloed
            or name in soloed
            or parent_of(name) in soloed
            or any(parent_of(other) == name for other in soloed)
        )

    def heard(self, name: str) -> bool:
        """Whether stem ``name`` reaches the mix: it is audible, and so is its group when it is a split stem's
        child."""
        group = parent_of(name)
        return self.audible(name) and (group is None or self.audible(group))

    def is_unity(self, stems: Sequence[str], mutes: bool = False) -> bool:
        """True when the render is exactly the sum of the stems (every gain 0 dB, every effect bypassed, a split
        stem's group too); with ``mutes``, the sum of the heard stems (muted or unsoloed stems may be left out). The
        key and tempo are applied to that render afterwards: see `changes_key_or_tempo`."""

        def unity(stem: str) -> bool:
            group = parent_of(stem)
            return all(self.channels.get(name, Channel()).is_unity() for name in [stem, *([group] if group else [])])

        return (
            all(unity(s) if self.heard(s) else mutes for s in stems)
            and self.master_gain_db == 0.0
            and all(e.bypass for e in self.master)
        )

    def _effect(self, chain: list[Effect], index: str, control: str) -> Effect:
        if not index.isdigit() or int(index) >= len(chain):
            raise MixError(f"Control {control!r} names effect {index} but the chain has {len(chain)} effects.")
        return chain[int(index)]

    def control_range(self, control: str) -> tuple[float, float]:
        """The span a fader or a MIDI controller covers for a control (switches: 0..1)."""
        parts = control.split("/")
        if control == "master/semitones":
            return SEMITONES_RANGE
        if control == "master/tempo":
            return TEMPO_RANGE
        if parts[-1] in SWITCHES:
            return 0.0, 1.0
        if parts[-1] == "pan":
            return -1.0, 1.0
        if (parts[-1] == "gain_db" and "fx" not in parts) or parts[-2:-1] == ["send"]:
            return FADER_RANGE
        effect = self._lookup_effect(control)
        spec = effect.known_spec()
        if spec is None or parts[-1] not in spec.params:
            raise MixError(f"Control {control!r} is not a parameter StemDesk can automate.")
        return spec.params[parts[-1]].low, spec.params[parts[-1]].high

    def _lookup_effect(self, control: str) -> Effect:
        parts = control.split("/")
        if parts[0] == "master" and len(parts) == 4 and parts[1] == "fx":
            return self._effect(self.master, parts[2], control)
        if parts[0] == "bus" and len(parts) == 5 and parts[2] == "fx" and parts[1] in self.buses:
            return self._effect(self.buses[parts[1]], parts[3], control)
        name, rest = strip_control(control)
        if len(rest) == 3 and rest[0] == "fx":
            return self._effect(self.channel(name).effects, rest[1], control)
        raise MixError(f"Unknown control {control!r}.")

    def set_control(self, control: str, value: float) -> None:
        """Set one control by name, checked against its range. Names:
        ``<stem>/gain_db``, ``<stem>/pan``, ``<stem>/mute``, ``<stem>/solo``, ``<stem>/send/<bus>``,
        ``<stem>/fx/<i>/<param>`` (``<stem>`` may be a split stem's child: ``vocals/lead/gain_db``),
        ``master/gain_db``, ``master/fx/<i>/<param>``, ``bus/<bus>/fx/<i>/<param>``, ``master/semitones``,
        ``master/tempo`` (a ratio: 0.8 plays at 80 %)."""
        parts = control.split("/")
        name, rest = strip_control(control)
        if parts == ["master", "gain_db"]:
            self.master_gain_db = _number(control, value, *GAIN_RANGE, "dB")
        elif control == "master/semitones":
            self.semitones = _number("The key", value, *SEMITONES_RANGE, "semitones", setting="semitones")
        elif control == "master/tempo":
            self.tempo = _number("The tempo", value, *TEMPO_RANGE, "(a ratio of the song's tempo)", setting="tempo")
        elif parts[0] not in ("master", "bus") and len(rest) == 1 and rest[0] in ("gain_db", "pan", *SWITCHES):
            channel = self.channel(name)
            if rest[0] in SWITCHES:
                setattr(channel, rest[0], _number(control, value, 0.0, 1.0) >= 0.5)
            elif rest[0] == "pan":
                channel.pan = _number(control, value, -1.0, 1.0)
            else:
                channel.gain_db = _number(control, value, *GAIN_RANGE, "dB")
        elif parts[0] not in ("master", "bus") and len(rest) == 2 and rest[0] == "send":
            if rest[1] not in self.buses:
                raise MixError(f"Control {control!r} sends to bus {rest[1]!r}, which the mix does not define.")
            self.channel(name).sends[rest[1]] = _number(control, value, *GAIN_RANGE, "dB")
        else:
            effect = self._lookup_effect(control)
            if effect.kind == "vst3":
                effect.params[parts[-1]] = value
            else:
                spec = effect.known_spec()
                if spec is None:
                    raise MixError(f"Control {control!r} belongs to an effect of unknown kind {effect.kind!r}.")
                effect.params = spec.check({**effect.params, parts[-1]: value})

    def record(self, control: str, seconds: float, value: float) -> None:
        """Add an automation point (a fader move during playback), replacing points recorded later than it. The key
        and tempo hold for the whole song: moving them only sets them."""
        self.set_control(control, value)
        if control in KEY_TEMPO:
            return
        points = self.automation.setdefault(control, [])
        del points[bisect.bisect_left(points, (seconds, -math.inf)) :]
        points.append((float(seconds), float(value)))

    def at(self, seconds: float) -> Mix:
        """The mix with its automation applied at a time: continuous controls interpolate linearly, switches hold."""
        if not self.automation:
            return self
        mix = copy.deepcopy(self)
        mix.automation = {}
        for control, points in self.automation.items():
            i = bisect.bisect_right(points, (seconds, math.inf))
            if i == 0:
                value = points[0][1]
            elif i == len(points) or control.split("/")[-1] in SWITCHES:
                value = points[i - 1][1]
            else:
                (t0, v0), (t1, v1) = points[i - 1], points[i]
                value = v0 + (v1 - v0) * (seconds - t0) / (t1 - t0) if t1 > t0 else v1
            mix.set_control(control, value)
        return mix

    def validate(self, stems: Sequence[str]) -> None:
        missing = sorted(set(self.channels) - set(strips(stems)))
        if missing:
            raise MixError(f"The mix has a channel {missing[0]!r} but the stems are {', '.join(stems)}.")
        for name, channel in self.channels.items():
            for bus in channel.sends:
                if bus not in self.buses:
                    raise MixError(f"{name} sends to bus {bus!r}, which the mix does not define.")

    def to_dict(self) -> dict:  # keys: MIX_KEYS
        data = {
            "stemdesk_mix": MIX_VERSION if self.changes_key_or_tempo else 1,  # what an older StemDesk can read
            "channels": {n: c.to_dict() for n, c in self.channels.items()},
            "buses": {n: [e.to_dict() for e in chain] for n, chain in self.buses.items()},
            "master": [e.to_dict() for e in self.master],
            "master_gain_db": self.master_gain_db,
            "automation": {c: [list(p) for p in points] for c, points in self.automation.items()},
        }
        if self.changes_key_or_tempo:
            data.update(semitones=self.semitones, tempo=self.tempo)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, registry: Registry | None = None) -> Mix:
        """A mix checked field by field; its effects may be of ``registry``'s kinds (default: the built-ins)."""
        if not isinstance(data, dict):
            raise MixError("A mix must be a JSON object.")
        unknown = sorted(set(data) - MIX_KEYS)
        if unknown:
            # e.g. a project file or a DAW's JSON: rendering it as an empty mix would silently give the original
            raise MixError(
                f"This is not a StemDesk mix: it has {', '.join(map(repr, unknown[:3]))}, which a mix "
                f"does not (a mix has {', '.join(sorted(MIX_KEYS))})."
            )
        version = data.get("stemdesk_mix", MIX_VERSION)
        if not isinstance(version, int) or version > MIX_VERSION:
            raise MixError(
                f"This mix was written by a newer StemDesk (format {version!r}); update StemDesk to open it."
            )
        channels = data.get("channels", {})
        buses = data.get("buses", {})
        if not isinstance(channels, dict) or len(channels) > 64 or not isinstance(buses, dict) or len(buses) > 16:
            raise MixError("A mix holds at most 64 channels and 16 buses, as objects keyed by name.")
        for name in channels:
            if not isinstance(name, str) or RESERVED_NAMES & set(name.split("/")) or len(name.split("/")) > 2:
                raise MixError(
                    f"A mix cannot have a channel {name!r}: {', '.join(sorted(RESERVED_NAMES))} are reserved names, "
                    'and a channel is a stem ("vocals") or a split stem\'s child ("vocals/lead").'
                )
        mix = cls(
            channels={str(n): Channel.from_dict(str(n), c, registry) for n, c in channels.items()},
            buses={str(n): _effects(f"bus {n}", chain, registry) for n, chain in buses.items()},
            master=_effects("master", data.get("master", []), registry),
            master_gain_db=_number("master_gain_db", data.get("master_gain_db", 0.0), *GAIN_RANGE, "dB"),
            semitones=_number("semitones", data.get("semitones", 0.0), *SEMITONES_RANGE, "semitones"),
            tempo=_number("tempo", data.get("tempo", 1.0), *TEMPO_RANGE, "(a ratio of the song's tempo)"),
        )
        automation = data.get("automation", {})
        if (
            not isinstance(automation, dict)
            or sum(len(v) for v in automation.values() if isinstance(v, list)) > MAX_POINTS
        ):
            raise MixError(f"Automation must be an object of control -> points, at most {MAX_POINTS} points.")
        probe = copy.deepcopy(mix)
        for control, points in automation.items():
            if control in KEY_TEMPO:
                raise MixError(f"Automation of {control!r}: the key and tempo hold for the whole song.")
            if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
                raise MixError(f"Automation of {control!r} must be a list of [seconds, value] pairs.")
            times = [_number(f"automation {control} time", t, 0.0, 1e7, "s") for t, _ in points]
            if times != sorted(times):
                raise MixError(f"Automation of {control!r} is not in time order.")
            for _, value in points:
                probe.set_control(str(control), value)  # checks the control exists and the value's range
            mix.automation[str(control)] = [(float(t), float(v)) for t, v in points]
        return mix

    @classmethod
    def from_json(cls, text: str | bytes, registry: Registry | None = None) -> Mix:
        if len(text) > MAX_MIX_BYTES:
            raise MixError(f"The mix file is {len(text)} bytes; a mix is at most {MAX_MIX_BYTES} bytes.")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise MixError(f"The mix is not valid JSON ({error}).") from None
        return cls.from_dict(data, registry)


def parent_of(name: str) -> str | None:
    """The split stem a child strip belongs to ("vocals" for "vocals/lead"); None for a stem that is no child."""
    return name.split("/", 1)[0] if "/" in name else None


def strip_control(control: str) -> tuple[str, list[str]]:
    """A control's strip and what it names on it: ("vocals/lead", ["gain_db"]) for "vocals/lead/gain_db",
    ("drums", ["fx", "0", "mix"]) for "drums/fx/0/mix"."""
    parts = control.split("/")
    if len(parts) >= 3 and parts[1] not in STRIP_CONTROLS:
        return f"{parts[0]}/{parts[1]}", parts[2:]
    return parts[0], parts[1:]


def strips(stems: Sequence[str]) -> list[str]:
    """The mixer's strips for ``stems`` (what a renderer plays: a split stem's children, "vocals/lead"): each stem,
    and before a split stem's children their group ("vocals", "vocals/lead", "vocals/backing", "drums", ...)."""
    out: list[str] = []
    for stem in stems:
        group = parent_of(stem)
        if group is not None and group not in out:
            out.append(group)
        out.append(stem)
    return out


def preset(name: str, stems: Sequence[str], amount_db: float = 6.0) -> Mix:
    """Mixes for common tasks. karaoke: vocals muted; karaoke-backing: the lead vocal muted, the backing vocals kept
    (vocals split into lead and backing); acappella: vocals only; vocal-up / vocal-down: vocals ±amount_db;
    drumless: drums muted (a practice track). A split stem's presets act on its group."""
    mix = Mix()
    groups = [s for s in strips(stems) if parent_of(s) is None]
    listed = ", ".join(stems)
    if name in ("karaoke", "karaoke-backing", "acappella", "vocal-up", "vocal-down") and "vocals" not in groups:
        raise MixError(f"The {name} preset needs a vocals stem; these stems are {listed}.")
    if name == "karaoke":
        mix.channel("vocals").mute = True
    elif name == "karaoke-backing":
        if "vocals/lead" not in stems:
            raise MixError(
                "The karaoke-backing preset mutes the lead vocal and keeps the backing vocals, so it needs the vocals "
                "split into lead and backing (stemdesk separate --split vocals=stemdesk-vocals-leadback, or "
                f"stemdesk split); these stems are {listed}."
            )
        mix.channel("vocals/lead").mute = True
    elif name == "acappella":
        for stem in groups:
            if stem != "vocals":
                mix.channel(stem).mute = True
    elif name in ("vocal-up", "vocal-down"):
        mix.vocal_db = abs(amount_db) if name == "vocal-up" else -abs(amount_db)
    elif name == "drumless":
        if "drums" not in groups:
            raise MixError(f"The drumless preset needs a drums stem; these stems are {listed}.")
        mix.channel("drums").mute = True
    else:
        raise MixError(f"Unknown preset {name!r}; use one of {', '.join(PRESETS)}.")
    return mix


def with_preset(mix: Mix, name: str, stems: Sequence[str], amount_db: float = 6.0) -> Mix:
    """``mix`` with a preset's levels (each strip's gain, mute and solo, a split stem's group and children too) and
    everything else kept: pans, effect chains, sends, buses, the master chain and automation. A copy; ``mix`` is not
    changed."""
    levels = preset(name, stems, amount_db)
    out = copy.deepcopy(mix)
    for stem in strips(stems):
        target, channel = levels.channels.get(stem, Channel()), out.channel(stem)
        channel.gain_db, channel.mute, channel.solo = target.gain_db, target.mute, target.solo
    return out
