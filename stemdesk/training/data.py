"""Multitrack songs for training, held in memory as int16 to keep 35 minutes under 1 GB, and the sampler that draws
augmented batches from them. Songs are read from files by `stemdesk.training.dataset`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from stemdesk.core import augment
from stemdesk.core.errors import StemDeskError

from .augment import Augmentation, random_pitch_time


@dataclass
class Song:
    """stems: int16 (sources, channels, length) scaled by 1/32768; ``usable`` marks sources whose stem really
    holds that source (a song with its bass inside "other" has neither bass nor other usable alone)."""

    name: str
    stems: np.ndarray
    usable: tuple[bool, ...]
    sample_rate: int
    weight: float = 1.0  # how often the sampler draws from this song, per second, against a song of weight 1
    # (sources + group kinds, seconds): the seconds where each source (then each group kind) sounds, for the
    # sampler to draw excerpts around (a split model's session tracks are silent most of the song); None: any second
    active: np.ndarray | None = None
    # group tracks, int16 (channels, length) by group kind: a track known to hold several sources at once (a drum
    # loop of kick and snare; the kinds are a stem set's, `StemSet.group_kinds`). Part of the mixture; no source's
    # own target (see `stemdesk.training.train.merge_blocks`). A kind the song lacks is silent.
    groups: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(self.usable)

    @property
    def length(self) -> int:
        return self.stems.shape[-1]

    def excerpt(self, source: int | slice, start: int, length: int) -> Tensor:
        return torch.from_numpy(self.stems[source, :, start : start + length].astype(np.float32) / 32768.0)

    def group_excerpt(self, kinds: int, start: int, length: int) -> Tensor:
        """The group tracks of ``kinds`` kinds from ``start``: float32 (kinds, channels, length), silence for a
        kind the song lacks."""
        out = torch.zeros(kinds, self.stems.shape[1], length)
        for kind, row in self.groups.items():
            out[kind] = torch.from_numpy(row[:, start : start + length].astype(np.float32) / 32768.0)
        return out

    @classmethod
    def from_float(cls, name: str, stems: np.ndarray, usable: Sequence[bool], sample_rate: int) -> Song:
        """stems: float (sources, channels, length) in [-1, 1], stored as int16 (clipped at full scale)."""
        return cls(name, to_int16(stems), tuple(usable), sample_rate)

    def audio(self) -> Tensor:
        """All stems as float32 (sources, channels, length), made in one allocation (a whole song's is hundreds of
        MB; dividing by a power of two in place is exact)."""
        return torch.from_numpy(self.stems).to(torch.float32).div_(32768.0)

    def group_audio(self, kinds: int) -> Tensor:
        """The whole song's group tracks, float32 (kinds, channels, length) (see `group_excerpt`)."""
        return self.group_excerpt(kinds, 0, self.length)

    def loudest_window(self, source: int = 0, seconds: float = 20.0) -> tuple[int, int]:
        """(start, stop) of the ``seconds`` where ``source`` is loudest, starts on one-second steps; the whole
        song when it is shorter. Used to pick the excerpt that slow metrics (BSS Eval) run on."""
        n = int(seconds * self.sample_rate)
        if self.length <= n:
            return 0, self.length
        energy = np.concatenate([[0.0], np.cumsum(np.square(self.stems[source].astype(np.float64)).sum(0))])
        starts = np.arange(0, self.length - n, self.sample_rate)
        start = int(starts[np.argmax(energy[starts + n] - energy[starts])])
        return start, start + n


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] as `Song` stores it: int16 scaled by 32768, clipped at full scale."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def source_map(estimator_sources: Sequence[str], data_sources: Sequence[str]) -> list[list[int]]:
    """For each source the estimator separates, the data stems that add up to it. "accompaniment" (or any name
    missing from the data when the estimator's first source is) is everything but the estimator's other sources."""
    mapping = []
    for name in estimator_sources:
        if name in data_sources:
            mapping.append([data_sources.index(name)])
        elif name == "accompaniment":
            others = {data_sources.index(s) for s in estimator_sources if s in data_sources}
            mapping.append([i for i in range(len(data_sources)) if i not in others])
        else:
            raise ValueError(f"the training data has no stem for {name!r} (it has {', '.join(data_sources)})")
    return mapping


def source_of(mapping: list[list[int]], data_source: int) -> int:
    """The estimator's source (by `source_map`) that data source ``data_source`` adds up into: where a group
    track's data sources go."""
    for index, members in enumerate(mapping):
        if data_source in members:
            return index
    raise ValueError(f"data source {data_source} adds up into none of the estimator's sources: no group can name it")


def regroup(stems: Tensor, mapping: list[list[int]]) -> Tensor:
    """stems (..., data_sources, channels, length) → (..., estimator_sources, channels, length)."""
    return torch.stack([stems[..., idx, :, :].sum(dim=-3) for idx in mapping], dim=-3)


class Sampler:
    """Draws training batches of stems (batch, sources, channels, length).

    With probability ``remix`` each source comes from a different random song at a random offset (random remixing
    across songs); otherwise all sources come from one complete song at one offset, as mixed. Then what
    ``augmentation`` says: per-source gain, channel swap and polarity, and sometimes a pitch shift and tempo change
    of all sources alike. The mixture is the sum of the returned stems.

    ``groups`` (a split model's group kinds, each the source indices it holds): each example then has a row per
    kind after the sources, the songs' group tracks (`Song.groups`), which are part of the mixture. An example
    drawn as mixed holds them as the song does, and is drawn around a second where a source or a group sounds; a
    remixed one holds none (silent rows), so its targets stay exact.
    """

    def __init__(
        self,
        songs: Sequence[Song],
        length: int,
        remix: float = 0.5,
        seed: int = 0,
        augmentation: Augmentation = Augmentation(),
        names: Sequence[str] | None = None,
        groups: Sequence[Sequence[int]] = (),
    ):
        self.groups = [tuple(kind) for kind in groups]
        self.songs = [s for s in songs if s.length > length]
        if not self.songs:
            raise ValueError("no training song is longer than one excerpt")
        self.length = length
        self.remix = remix
        self.augmentation = augmentation
        self.rate = self.songs[0].sample_rate
        self.generator = torch.Generator().manual_seed(seed)
        n_sources = len(self.songs[0].usable)
        self.pools = [[s for s in self.songs if s.usable[i]] for i in range(n_sources)]
        empty = [i for i, pool in enumerate(self.pools) if not pool]
        if empty:
            missing = ", ".join(names[i] if names else str(i) for i in empty)
            raise StemDeskError(
                f"No training song has a usable {missing} stem (each is missing or near-silent), "
                "so there is nothing to learn it from. Add songs that have one, map a stem to it, "
                "or hold out other songs for validation."
            )
        self.complete = [s for s in self.songs if s.complete]
        # Weight songs by length so every second of audio is equally likely (times the song's own weight).
        self._weights = [torch.tensor([s.length * s.weight for s in pool]) for pool in self.pools]
        self._complete_weights = torch.tensor([s.length * s.weight for s in self.complete])

    def _pick(self, pool: list[Song], weights: Tensor, source: int | None = None) -> tuple[Song, int]:
        """A song of ``pool`` and an excerpt's start in it: around a second where ``source`` (None: any source)
        sounds when the song says where its sources sound, else anywhere."""
        song = pool[int(torch.multinomial(weights, 1, generator=self.generator))]
        last = song.length - self.length
        if song.active is not None:
            sounding = song.active.any(axis=0) if source is None else song.active[source]
            seconds = np.flatnonzero(sounding)
            if len(seconds):
                second = int(seconds[int(torch.randint(0, len(seconds), (1,), generator=self.generator))])
                # the excerpt holds that second somewhere, at a random place
                low = max(0, (second + 1) * song.sample_rate - self.length)
                high = min(last, second * song.sample_rate)
                if high > low:
                    return song, int(torch.randint(low, high, (1,), generator=self.generator))
        return song, int(torch.randint(0, last, (1,), generator=self.generator))

    def example(self) -> Tensor:
        g = self.generator
        if len(self.complete) == 0 or float(torch.rand(1, generator=g)) < self.remix:
            parts = []
            for i, (pool, weights) in enumerate(zip(self.pools, self._weights)):
                song, start = self._pick(pool, weights, i)
                parts.append(song.excerpt(i, start, self.length))
            stems = torch.stack(parts)
            if self.groups:
                stems = torch.cat([stems, torch.zeros(len(self.groups), *stems.shape[1:])])
        else:
            song, start = self._pick(self.complete, self._complete_weights)
            stems = song.excerpt(slice(None), start, self.length)
            if self.groups:
                stems = torch.cat([stems, song.group_excerpt(len(self.groups), start, self.length)])
        how = self.augmentation
        if how.gain_db is not None:
            stems = augment.random_gain(stems, g, *how.gain_db)
        if how.channel_swap > 0:
            stems = augment.channel_swap(stems, g, how.channel_swap)
        if how.polarity > 0:
            stems = augment.polarity(stems, g, how.polarity)
        if how.pitch_time > 0:
            stems = random_pitch_time(stems, self.rate, g, how)
        return stems

    def share(self, names: Collection[str]) -> list[float]:
        """For each source, the expected share of examples whose stem of that source is drawn from the songs named
        ``names``, as `example` draws: remixed from the songs where the source is usable, else from the complete
        songs, each song by its length times its weight."""

        def part(pool: list[Song], weights: Tensor) -> float:
            total = float(weights.sum())
            return sum(float(w) for song, w in zip(pool, weights) if song.name in names) / total if total else 0.0

        remix = self.remix if self.complete else 1.0
        as_mixed = part(self.complete, self._complete_weights) if self.complete else 0.0
        return [remix * part(pool, w) + (1 - remix) * as_mixed for pool, w in zip(self.pools, self._weights)]

    def batch(self, size: int) -> Tensor:
        return torch.stack([self.example() for _ in range(size)])

    def state(self) -> Tensor:
        return self.generator.get_state()

    def set_state(self, state: Tensor) -> None:
        self.generator.set_state(state)
