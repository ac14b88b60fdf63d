"""Python plugins: packages that add exporters, effects or model folders to StemDesk.

A plugin is any installed distribution with an entry point in the group ``stemdesk.plugins`` naming a function that
takes a `PluginAPI`::

    # pyproject.toml of the plugin
    [project.entry-points."stemdesk.plugins"]
    loudness = "stemdesk_loudness:register"

    # stemdesk_loudness/__init__.py
    def register(api):
        api.add_exporter("loudness", write_loudness_matched)      # (stems, mix, out, tempo) -> Path
        api.add_effect(EffectSpec(...))                           # a new effect kind for mixes
        api.add_models_folder(Path(__file__).parent / "models")   # more models for `stemdesk models`

`load_plugins` builds a fresh `Registry` (the built-ins plus what plugins add) and returns it with a report; each
front end calls it once at start-up and passes the registry to what needs it. Nothing is registered into module
state, and importing StemDesk scans no entry points. A plugin's registrations are staged and added only when its
``register`` returns, so a plugin that raises leaves nothing behind: it is disabled, named in the report, and
StemDesk starts as usual. First-party plugins live in ``plugins/`` of the repository.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .core.errors import StemDeskError
from .export.kinds import BUILTIN_EXPORTERS
from .io.registry import Registry
from .mixer.effects import BUILTIN_EFFECTS, EffectSpec

GROUP = "stemdesk.plugins"
API_VERSION = 1


class PluginError(StemDeskError):
    """A plugin could not be loaded; it is disabled."""


@dataclass
class PluginAPI:
    """What a plugin's ``register(api)`` may call. ``api.version`` is the API version (bumped on breaking change).
    ``taken`` is the registry built so far, whose names a plugin may not reuse."""

    name: str
    version: int = API_VERSION
    taken: Registry = field(default_factory=lambda: builtin_registry(), repr=False)
    exporters: dict[str, Callable] = field(default_factory=dict)
    effects: list[EffectSpec] = field(default_factory=list)
    model_folders: list[Path] = field(default_factory=list)

    def add_exporter(self, name: str, writer: Callable) -> None:
        """writer(stems: export.remix.Stems, mix: mixer.mix.Mix, out: Path (no extension), tempo) -> written Path
        (or an `io.registry.Written`: the path and one line for people about it).
        Appears as ``stemdesk export DIR --session NAME`` and in the app's export menu."""
        if not name.isidentifier() or name in self.taken.exporters or name in self.exporters:
            raise PluginError(f"exporter name {name!r} is taken or not an identifier")
        if not callable(writer):
            raise PluginError(f"exporter {name!r} is not callable")
        self.exporters[name] = writer

    def add_effect(self, spec: EffectSpec) -> None:
        if (
            not isinstance(spec, EffectSpec)
            or spec.kind in self.taken.effects
            or spec.kind == "vst3"
            or any(s.kind == spec.kind for s in self.effects)
        ):
            raise PluginError(f"effect {getattr(spec, 'kind', spec)!r} is taken or not an EffectSpec")
        self.effects.append(spec)

    def add_models_folder(self, folder: str | Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise PluginError(f"models folder {folder} does not exist")
        self.model_folders.append(folder)


@dataclass
class PluginInfo:
    name: str
    target: str  # "module:function"
    distribution: str | None
    loaded: bool
    error: str | None = None
    provides: list[str] = field(default_factory=list)


def builtin_registry() -> Registry:
    """The registry of what StemDesk itself provides: what a library caller or a test gets without plugins."""
    return Registry(exporters=BUILTIN_EXPORTERS, effects=BUILTIN_EFFECTS)


def load_plugins(entry_points: list | None = None) -> tuple[Registry, list[PluginInfo]]:
    """A fresh registry (the built-ins plus every plugin that loads) and the report of each plugin (``entry_points``:
    these instead of the installed ones). Never raises: a failing plugin is disabled and its report says why."""
    found = entry_points if entry_points is not None else list(importlib.metadata.entry_points(group=GROUP))
    registry = builtin_registry()
    report = []
    for point in found:
        dist = getattr(getattr(point, "dist", None), "name", None)
        info = PluginInfo(point.name, point.value, dist, loaded=False)
        try:
            register = point.load()
            api = PluginAPI(point.name, taken=registry)
            register(api)
            # A plugin may have changed what it handed over after adding it: check everything, then add it all.
            for name in api.exporters:
                if name in registry.exporters:
                    raise PluginError(f"exporter name {name!r} is taken")
            for spec in api.effects:
                if not isinstance(spec, EffectSpec) or spec.kind in registry.effects:
                    raise PluginError(f"effect {getattr(spec, 'kind', spec)!r} is taken")
            registry = Registry(
                exporters={**registry.exporters, **api.exporters},
                effects={**registry.effects, **{spec.kind: spec for spec in api.effects}},
                model_folders=(*registry.model_folders, *api.model_folders),
            )
            info.loaded = True
            info.provides = (
                [f"exporter {n}" for n in api.exporters]
                + [f"effect {s.kind}" for s in api.effects]
                + [f"models {f}" for f in api.model_folders]
            )
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - a plugin (even one calling sys.exit) must not stop us
            info.error = (
                f'Plugin "{point.name}" ({point.value}) failed to load and is disabled: '
                f"{type(error).__name__}: {error}. Update or uninstall it "
                f"({'pip uninstall ' + dist if dist else 'remove its package'})."
            )
        report.append(info)
    return registry, report
