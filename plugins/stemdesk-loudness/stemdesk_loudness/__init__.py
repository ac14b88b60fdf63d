"""StemDesk's loudness-matching exporter, shipped as a plugin through the public plugin API.

    stemdesk export STEMS_DIR --session loudness -o OUT      ->  OUT.loudness.wav at -14 LUFS (STEMDESK_LUFS)

The remix (or the plain sum of the stems) is measured with ITU-R BS.1770-4 integrated loudness, gained to the target,
and held under -1 dBFS sample peak by a limiter only if the gain would push it over.

Every StemDesk command loads its plugins at start, so registering must be cheap: scipy and the renderer are imported
only when the exporter or the meter is used.
"""

from __future__ import annotations

__all__ = ["register", "LoudnessMeter", "integrated_loudness", "write_loudness_matched"]


def write_loudness_matched(stems, mix, out, tempo=None, target=None):
    from .exporter import write_loudness_matched as write

    return write(stems, mix, out, tempo, target)


def __getattr__(name: str):
    if name in ("LoudnessMeter", "integrated_loudness"):
        from . import meter

        return getattr(meter, name)
    raise AttributeError(name)


def register(api) -> None:
    api.add_exporter("loudness", write_loudness_matched)
