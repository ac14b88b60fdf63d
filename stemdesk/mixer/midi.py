"""MIDI learn and control of the mixer through mido (python-rtmidi: ALSA or JACK ports).

MIDI learn: `learn()` arms it, the next control change on the controller is captured, and the next mixer control the
user touches (`touched(control)`) is bound to it (or the other way round). Afterwards control changes move that
control live, scaled onto its range; during playback each move is also recorded as automation on the mix.
Mappings are saved per user as JSON in the StemDesk config folder.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import MixError
from ..io.atomic import atomic_write_bytes
from ..io.paths import config_dir
from .mix import Mix

MAX_MAPPINGS = 512


def mappings_path() -> Path:
    return config_dir() / "midi-mappings.json"


@dataclass(frozen=True)
class Binding:
    channel: int  # 0..15
    cc: int  # 0..127
    control: str  # a Mix control name, e.g. "vocals/gain_db"


class MidiMap:
    """(channel, cc) → mixer control."""

    def __init__(self, bindings: list[Binding] | None = None):
        self.bindings: dict[tuple[int, int], str] = {(b.channel, b.cc): b.control for b in bindings or []}

    def bind(self, channel: int, cc: int, control: str) -> None:
        # one controller per control: re-learning a control moves it to the new knob
        for key in [k for k, c in self.bindings.items() if c == control]:
            del self.bindings[key]
        self.bindings[(channel, cc)] = control

    def control_for(self, channel: int, cc: int) -> str | None:
        return self.bindings.get((channel, cc))

    def to_json(self) -> str:
        return json.dumps(
            [{"channel": ch, "cc": cc, "control": c} for (ch, cc), c in sorted(self.bindings.items())], indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> MidiMap:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise MixError(f"The MIDI mappings are not valid JSON ({error}).") from None
        if not isinstance(data, list) or len(data) > MAX_MAPPINGS:
            raise MixError(f"MIDI mappings must be a list of at most {MAX_MAPPINGS} bindings.")
        bindings = []
        for item in data:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("channel"), int)
                and 0 <= item["channel"] < 16
                and isinstance(item.get("cc"), int)
                and 0 <= item["cc"] < 128
                and isinstance(item.get("control"), str)
            ):
                raise MixError(f"Bad MIDI binding {str(item)[:80]!r}: needs channel 0-15, cc 0-127 and a control.")
            bindings.append(Binding(item["channel"], item["cc"], item["control"]))
        return cls(bindings)

    def save(self, path: Path | None = None) -> Path:
        return atomic_write_bytes(path or mappings_path(), self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: Path | None = None) -> MidiMap:
        path = path or mappings_path()
        if not path.is_file():
            return cls()
        return cls.from_json(path.read_text(encoding="utf-8"))


Move = Callable[[str, int, float | None], None]  # (control, the knob's value from 0 to 127, playhead or None)


class MidiController:
    """Applies control changes to a mix. ``apply(mix)`` hands each changed mix to the renderer (thread-safe there);
    ``clock()`` returns the playhead in seconds while recording, or None when not playing.

    With ``move`` instead of a mix, the controller keeps no mix: each move of a bound knob is handed to
    ``move(control, value, seconds)`` on the port's thread, for the mix's owner to apply (and check) on its own."""

    def __init__(
        self,
        mix: Mix | None,
        apply: Callable[[Mix], None] | None = None,
        midi_map: MidiMap | None = None,
        clock: Callable[[], float | None] = lambda: None,
        autosave: bool = False,
        move: Move | None = None,
    ):
        if (mix is None) == (move is None) or (mix is not None and apply is None):
            raise ValueError("a MIDI controller moves a mix of its own (and applies it) or hands its moves to `move`")
        self.mix = mix
        self.apply = apply
        self.move = move
        self.map = midi_map or MidiMap()
        self.clock = clock
        self.autosave = autosave
        self.recording = False
        self._lock = threading.Lock()
        self._learning = False
        self._pending_cc: tuple[int, int] | None = None
        self._pending_control: str | None = None
        self.last_error: str | None = None

    def learn(self) -> None:
        """Arm MIDI learn: bind the next controller move to the next mixer control touched."""
        with self._lock:
            self._learning, self._pending_cc, self._pending_control = True, None, None

    @property
    def learning(self) -> bool:
        return self._learning

    def touched(self, control: str) -> Binding | None:
        """The user touched a mixer control (the app calls this); completes a learn if one is armed."""
        if self.mix is not None:  # refuse names that are not controls (without a mix: the owner checked them)
            self.mix.control_range(control)
        with self._lock:
            if not self._learning:
                return None
            self._pending_control = control
            return self._complete()

    def _complete(self) -> Binding | None:
        if self._pending_cc is None or self._pending_control is None:
            return None
        channel, cc = self._pending_cc
        self.map.bind(channel, cc, self._pending_control)
        binding = Binding(channel, cc, self._pending_control)
        self._learning, self._pending_cc, self._pending_control = False, None, None
        if self.autosave:
            self.map.save()
        return binding

    def handle(self, message) -> str | None:
        """A mido message from the port's callback thread. Returns the control it moved, if any."""
        if message.type != "control_change":
            return None
        with self._lock:
            if self._learning:
                self._pending_cc = (message.channel, message.control)
                self._complete()
                return None
            control = self.map.control_for(message.channel, message.control)
            if control is None:
                return None
            seconds = self.clock() if self.recording else None
            if self.mix is not None:
                try:
                    move_mix(self.mix, control, message.value, seconds)
                except MixError as error:  # a binding to a control the current mix no longer has
                    self.last_error = str(error)
                    return None
        if self.move is not None:
            self.move(control, message.value, seconds)
        elif self.apply is not None and self.mix is not None:
            self.apply(self.mix)
        return control


def move_mix(mix: Mix, control: str, cc_value: int, seconds: float | None) -> None:
    """Put ``control`` of ``mix`` where a knob at ``cc_value`` (0 to 127) puts it on its range: recorded as automation
    at ``seconds`` while playing, else set. Raises MixError when the mix has no such control."""
    low, high = mix.control_range(control)
    value = low + (high - low) * cc_value / 127
    if seconds is not None:
        mix.record(control, seconds, value)
    else:
        mix.set_control(control, value)


_ALSA_QUIET: list[object] = []  # the no-op error handler given to libasound, kept alive for as long as the process runs


def _silence_alsa() -> None:
    """libasound prints its own errors to the process's stderr ("ALSA lib seq_hw.c:466:(snd_seq_hw_open) open
    /dev/snd/seq failed"); a machine without a sequencer simply has no ports, which the caller says in words."""
    if _ALSA_QUIET or sys.platform != "linux":
        return
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("asound")
    if name is None:
        return
    try:
        library = ctypes.CDLL(name)
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)(
            lambda *args: None
        )
        library.snd_lib_error_set_handler(handler)
        _ALSA_QUIET.append(handler)
    except (OSError, AttributeError):
        pass


def backend(api: str | None = None):
    """The mido rtmidi backend: JACK when a JACK server runs (or STEMDESK_MIDI_API=UNIX_JACK), else ALSA."""
    import mido

    _silence_alsa()
    api = api or os.environ.get("STEMDESK_MIDI_API")
    if api is None:
        api = "UNIX_JACK" if _jack_running() else "LINUX_ALSA"
    return mido.Backend(f"mido.backends.rtmidi/{api}")


def _jack_running() -> bool:
    """A JACK2 server listens on a socket named jack_<server>_<uid>_0 in /dev/shm."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    try:
        return any(
            p.name.startswith("jack_") and p.name.endswith(f"_{uid}_0") and p.is_socket()
            for p in Path("/dev/shm").iterdir()
        )
    except OSError:
        return False


def input_names(api: str | None = None) -> list[str]:
    try:
        return backend(api).get_input_names()
    except Exception:  # noqa: BLE001 - no MIDI system at all (no ALSA sequencer, no JACK): there are simply no ports
        return []


def open_input(name: str, controller: MidiController, api: str | None = None):
    """Open a MIDI input port whose messages drive ``controller``. Close the returned port to stop."""
    try:
        return backend(api).open_input(name, callback=controller.handle)
    except Exception as error:  # noqa: BLE001 - rtmidi raises its own types, and RuntimeError without a system
        raise MixError(
            f"Cannot open MIDI input {name!r}: {error}. Check that the controller is connected "
            "(`stemdesk midi` lists the ports)."
        ) from None
