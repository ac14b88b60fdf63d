"""What StemDesk can do beyond its fixed code: DAW session exporters, mixer effects and model folders.

A `Registry` is built once when a front end starts (`stemdesk.plugins.load_plugins`: the built-ins plus what
plugins add) and handed to whatever needs it; nothing registers into module state. It lives in ``io`` because the
lowest reader (the model store) is here; it holds the exporters and effects without knowing their types, so the
layers that define them (``export``, ``mixer``) keep their built-ins to themselves and read a registry when given
one. It is read-only once made, so one registry can be shared by every thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Written:
    """What an exporter wrote: the file, and one line people should read about it (what it holds, what was measured
    in it; empty when there is nothing to say). A writer may return a plain Path instead."""

    path: Path
    note: str = ""


@dataclass(frozen=True)
class Registry:
    """exporters: name -> writer(stems, mix, out path without extension, tempo) -> written path or `Written`
    (see `stemdesk.export.session`); effects: kind -> `stemdesk.mixer.effects.EffectSpec`; model_folders: searched
    after the environment's (see `stemdesk.io.model_store.search_path`)."""

    exporters: Mapping[str, Callable[..., Path | Written]] = field(default_factory=dict)
    effects: Mapping[str, Any] = field(default_factory=dict)
    model_folders: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        # Copies behind read-only views: whoever built the registry cannot change it afterwards by accident.
        object.__setattr__(self, "exporters", MappingProxyType(dict(self.exporters)))
        object.__setattr__(self, "effects", MappingProxyType(dict(self.effects)))
        object.__setattr__(self, "model_folders", tuple(Path(f) for f in self.model_folders))
