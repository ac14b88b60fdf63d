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

from .data import Song, regroup, source_map, source_of
from .stemsets import group_name, unsplit_gate

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
    source, and the median per source over the songs where that source is usable.

    With ``groups`` (a split model's group kinds, each the data sources it holds) a song's mixture holds its group
    tracks (`Song.groups`) too. Each source is then scored on the seconds where no group track sounds (the frames
    an unsplit track would leave out, `unsplit_gate`), and each group on its own seconds: the sum of its sources'
    estimates against their own tracks plus the tracks of the groups within it, where no group that shares only
    some of its sources sounds (its block would be larger there)."""

    def __init__(
        self,
        songs: Sequence[Song],
        data_sources: Sequence[str],
        postprocessing: PostProcessing = PostProcessing(),
        groups: Sequence[Sequence[int]] = (),
    ):
        """``postprocessing``: what separation will apply after the estimator (a model card's), applied here too,
        so a score is what a user gets."""
        self.songs = list(songs)
        self.data_sources = list(data_sources)
        self.postprocessing = postprocessing
        self.groups = [tuple(kind) for kind in groups]

    def score(self, estimator: Estimator) -> dict[str, Any]:
        """{"median": {source: dB}, "songs": {song: {source: dB}}}; with groups also "groups": {"median":
        {group: dB}, "songs": {song: {group: dB}}} (a group named by its sources, "kick+snare")."""
        device = next(estimator.parameters(), torch.empty(0)).device  # where it trains
        post = self.postprocessing
        separator = Separator(estimator, device, post.steps(estimator.sources), post.wiener)
        mapping = source_map(estimator.sources, self.data_sources)
        kinds = [tuple(source_of(mapping, i) for i in kind) for kind in self.groups]
        names = [group_name([estimator.sources[i] for i in kind]) for kind in kinds]
        scores: dict[str, dict[str, float]] = {}
        group_scores: dict[str, dict[str, float]] = {}
        for song in self.songs:
            truth = regroup(song.audio(), mapping)
            if song.groups and kinds:
                values, by_kind = self._song_usdr_groups(
                    separator, truth, song.group_audio(len(kinds)), kinds, song.sample_rate
                )
                group_scores[song.name] = {names[k]: float(v) for k, v in by_kind.items()}
            else:
                values = self._song_usdr(separator, truth, song.sample_rate)
            usable = [all(song.usable[i] for i in idx) for idx in mapping]
            scores[song.name] = {s: float(v) for s, v, ok in zip(estimator.sources, values, usable) if ok}
        result: dict[str, Any] = {"median": _medians(scores, estimator.sources), "songs": scores}
        if kinds:
            result["groups"] = {"median": _medians(group_scores, names), "songs": group_scores}
        return result

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

    @staticmethod
    def _song_usdr_groups(
        separator: Separator, truth: Tensor, groups: Tensor, kinds: Sequence[Sequence[int]], rate: int
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """One song with group tracks: truth (sources, channels, length), groups (kinds, channels, length), the
        mixture their sum. Returns the uSDR per source (dB) on the seconds where no group sounds, and per kind that
        sounds the uSDR of its block on its seconds (see the class's docstring)."""
        mix = truth.sum(0) + groups.sum(0)
        present = [k for k in range(len(kinds)) if bool(groups[k].any())]
        # per kind: 1 where it is silent (0 where it sounds and GUARD_SECONDS around, ramps between)
        quiet = {k: torch.from_numpy(unsplit_gate(groups[k].numpy(), rate)) for k in present}
        exact = torch.ones(mix.shape[-1])
        for k in present:
            exact *= quiet[k]
        weights, targets, members = {}, {}, {}
        for k in present:
            inside = set(kinds[k])
            weight = 1.0 - quiet[k]
            for h in present:
                if h != k and set(kinds[h]) & inside and not set(kinds[h]) <= inside:
                    weight = weight * quiet[h]  # a group that shares only some sources makes a larger block
            if float(weight.sum()) == 0.0:
                continue
            weights[k], members[k] = weight, list(kinds[k])
            within = [h for h in present if set(kinds[h]) <= inside]
            targets[k] = truth[members[k]].sum(0) + groups[within].sum(0)
        num = den = torch.zeros(truth.shape[0], dtype=torch.float64)
        group_num = {k: torch.zeros((), dtype=torch.float64) for k in weights}
        group_den = {k: torch.zeros((), dtype=torch.float64) for k in weights}
        at = 0
        for block in song_chunker(separator, rate).stream([mix], total=mix.shape[-1]):
            n = block.shape[-1]
            gate = exact[at : at + n]
            block_num, block_den = usdr_sums(truth[..., at : at + n] * gate, block * gate)
            num, den = num + block_num, den + block_den
            for k, weight in weights.items():
                w = weight[at : at + n]
                k_num, k_den = usdr_sums(targets[k][None, :, at : at + n] * w, block[members[k]].sum(0)[None] * w)
                group_num[k] += k_num[0]
                group_den[k] += k_den[0]
            at += n
        by_kind = {k: 10 * torch.log10((group_num[k] + 1e-8) / (group_den[k] + 1e-8)) for k in weights}
        return 10 * torch.log10((num + 1e-8) / (den + 1e-8)), by_kind


def _medians(scores: dict[str, dict[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Per name, the median of its scores over the songs that have one."""
    summary = {}
    for name in names:
        values = [v[name] for v in scores.values() if name in v]
        if values:
            summary[name] = median(values)
    return summary
