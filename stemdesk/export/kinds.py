"""The session kinds StemDesk writes by itself, by name, and the kinds a registry offers.

Every command loads its plugins, and so this table, at start: each writer's module (XML, numpy, the MP4 muxer) is
imported when a session of its kind is first written, so `stemdesk --help` does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from types import MappingProxyType

from ..io.registry import Registry, Written

# writer(stems, mix, out path without extension, tempo) -> the written path (or a `Written`)
Exporter = Callable[..., Path | Written]


def _on_first_use(module: str, name: str) -> Exporter:
    def writer(stems, mix, out, tempo=None, **options):
        return getattr(import_module(module, __package__), name)(stems, mix, out, tempo, **options)

    writer.__name__ = writer.__qualname__ = name
    return writer


# Plugins add more to the registry a front end builds (see stemdesk.plugins), never to this.
BUILTIN_EXPORTERS: Mapping[str, Exporter] = MappingProxyType(
    {
        "aaf": _on_first_use(".aaf", "write_aaf"),
        "aaf-linked": _on_first_use(".aaf", "write_aaf_linked"),
        "ardour": _on_first_use(".ardour", "write_ardour"),
        "dawproject": _on_first_use(".session", "write_dawproject"),
        "rpp": _on_first_use(".session", "write_rpp"),
        "stems-mp4": _on_first_use(".ni_stem", "write_stem_mp4"),
        "stems-mp4-aac": _on_first_use(".ni_stem", "write_stem_mp4_aac"),
    }
)


# the built-in kinds whose writer also takes the project's loop (``loop=(start, end)`` in seconds of the song)
LOOPED_KINDS = frozenset({"ardour"})


def exporters_of(registry: Registry | None = None) -> Mapping[str, Exporter]:
    """The session kinds a registry offers (its built-ins included); without one, the built-ins."""
    return registry.exporters if registry is not None else BUILTIN_EXPORTERS
