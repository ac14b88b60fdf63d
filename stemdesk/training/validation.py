"""Validation: whole songs through the real separator and chunker, scored by uSDR as the stems stream out.

The chunker runs with the settings separation uses (`stemdesk.core.chunker`'s defaults through the separator's
`chunking`), so a validation score is what a user would get from `stemdesk separate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stemdesk.core.chunker import Chunker
from stemdesk.core.defaults import DEFAULT_OVERLAP_SECONDS, DEFAULT_SEGMENT_SECONDS
from stemdesk.core.estimators import Estimator
from stemdesk.core.metrics import usdr_sums
from stemdesk.core.postprocess import PostProcessing
from stemdesk.core.separator import Separator

from .data import Song, regroup, source_map

# The validation songs of ../shared/data that StemDesk's own models are never trained on (lab/default_models.py
# trains on the rest; benchmarks/quality.py and tests/test_real_songs.py score on these).
VALID_CC0 = {"3.Sodium"}


def split(data: Path) -> tuple[list[Path], list[Path]]:
    """The training and validation song folders of ``data`` (../shared/data), split by song: the CC0 song
    "3.Sodium" and every seventh MUSDB excerpt are validation songs."""
    musdb = sorted(p for p in (data / "musdb7-train").iterdir() if p.is_dir())
    cc0 = sorted(p for p in (data / "cc0-efree").iterdir() if p.is_dir())
    valid = [p for i, p in enumerate(musdb) if i % 7 == 3] + [p for p in cc0 if p.name in VALID_CC0]
    train = [p for p in musdb + cc0 if p not in valid]
    return train, valid


def song_chunker(separator: Separator, rate: int) -> Chunker:
    """The chunker separation uses for this separator at ``rate``."""
    return Chunker(
        lambda x: separator(x, rate).stems, **separator.chunking(rate, DEFAULT_SEGMENT_SECONDS, DEFAULT_OVERLAP_SECONDS)
    )


def separate_song(separator: Separator, mix: Tensor, rate: int) -> Tensor:
    """A whole song (channels, length) through the real separator in overlapping segments, as at inference;
    stems (sources, channels, length)."""
    return song_chunker(separator, rate).run(mix)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


class Validator:
    """Scores an estimator on the validation songs (split by song from the training songs): uSDR per song and
    source, and the median per source over the songs where that source is usable."""

    def __init__(
        self, songs: Sequence[Song], data_sources: Sequence[str], postprocessing: PostProcessing = PostProcessing()
    ):
        """``postprocessing``: what separation will apply after the estimator (a model card's), applied here too,
        so a score is what a user gets."""
        self.songs = list(songs)
        self.data_sources = list(data_sources)
        self.postprocessing = postprocessing

    def score(self, estimator: Estimator) -> dict[str, Any]:
        """{"median": {source: dB}, "songs": {song: {source: dB}}}."""
        device = next(estimator.parameters(), torch.empty(0)).device  # where it trains
        post = self.postprocessing
        separator = Separator(estimator, device, post.steps(estimator.sources), post.wiener)
        mapping = source_map(estimator.sources, self.data_sources)
        scores: dict[str, dict[str, float]] = {}
        for song in self.songs:
            values = self._song_usdr(separator, regroup(song.audio(), mapping), song.sample_rate)
            usable = [all(song.usable[i] for i in idx) for idx in mapping]
            scores[song.name] = {s: float(v) for s, v, ok in zip(estimator.sources, values, usable) if ok}
        summary = {}
        for source in estimator.sources:
            values = [v[source] for v in scores.values() if source in v]
            if values:
                summary[source] = median(values)
        return {"median": summary, "songs": scores}

    @staticmethod
    def _song_usdr(separator: Separator, truth: Tensor, rate: int) -> Tensor:
        """uSDR per source (dB) of one song, truth (sources, channels, length). Streamed: each finished block of
        stems is scored and dropped, so a long song's estimate is never whole in memory."""
        mix = truth.sum(0)
        num = den = 0.0
        at = 0
        for block in song_chunker(separator, rate).stream([mix], total=mix.shape[-1]):
            n = block.shape[-1]
            block_num, block_den = usdr_sums(truth[..., at : at + n], block)
            num, den, at = num + block_num, den + block_den, at + n
        return 10 * torch.log10((num + 1e-8) / (den + 1e-8))
