"""StemDesk's loudness-matching exporter, shipped as a plugin through the public plugin API.

    stemdesk export STEMS_DIR --session loudness -o OUT      ->  OUT.loudness.wav at -14 LUFS (STEMDESK_LUFS)

The remix (or the plain sum of the stems) is measured with ITU-R BS.1770-4 integrated loudness, gained to the target,
and held under -1 dBFS sample peak by a limiter only if the gain would push it over.
"""

from __future__ import annotations

from .exporter import write_loudness_matched
from .meter import LoudnessMeter, integrated_loudness

__all__ = ["register", "LoudnessMeter", "integrated_loudness", "write_loudness_matched"]


def register(api) -> None:
    api.add_exporter("loudness", write_loudness_matched)
