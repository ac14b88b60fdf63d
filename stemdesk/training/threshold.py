"""Choosing an inference threshold on the training songs, after training.

Deep Karaoke's confidence α and Lin et al.'s θ turn a network's vocal probabilities into a binary mask. Both papers
treat the threshold as a knob: Simpson et al. sweep α to trade interference against artefacts. A fixed 0.5 is
only right when the probabilities are calibrated around it; a network that learnt that vocals are rare (most bins
of most songs are not vocals) rarely passes 0.5, and its vocals come out silent. So a recipe that names a threshold
(`Recipe.threshold`) gets it chosen after training: the candidate whose separated vocals score best on excerpts of
the training songs (never the validation songs), through the real separator and its null rule.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from stemdesk.core.estimators import Estimator
from stemdesk.core.metrics import usdr
from stemdesk.core.separator import Separator

from .data import Song

CANDIDATES = tuple(round(0.05 * i, 2) for i in range(2, 11))  # 0.1 … 0.5
EXCERPT_SECONDS = 10.0
SONGS = 12


def excerpts(songs: Sequence[Song], source: int = 0, count: int = SONGS, seconds: float = EXCERPT_SECONDS):
    """(mixture, reference) pairs: the loudest ``seconds`` of ``source`` in up to ``count`` songs where it is usable
    and not silent, spread evenly over them in name order (the same songs for every candidate and every run)."""
    pool = sorted((s for s in songs if s.usable[source] and s.stems[source].any()), key=lambda s: s.name)
    if len(pool) > count:
        pool = [pool[round(i * (len(pool) - 1) / (count - 1))] for i in range(count)] if count > 1 else pool[:1]
    pairs = []
    for song in pool:
        start, stop = song.loudest_window(source, seconds)
        stems = song.excerpt(slice(None), start, stop - start)
        pairs.append((stems.sum(0), stems[source]))
    return pairs


def choose_threshold(
    estimator: Estimator,
    key: str,
    songs: Sequence[Song],
    candidates: Sequence[float] = CANDIDATES,
    source: int = 0,
) -> dict[str, Any]:
    """Set ``estimator``'s threshold ``key`` (an attribute and a config value, e.g. "alpha") to the candidate whose
    ``source`` estimate has the best median uSDR on excerpts of ``songs``; a tie goes to the candidate nearest 0.5.
    Returns the report the card keeps: each candidate's median, the choice, the songs and the seconds it took."""
    if not hasattr(estimator, key) or key not in estimator.hyper:
        raise ValueError(f"{estimator.kind} has no threshold {key!r}")
    pairs = excerpts(songs, source)
    if not pairs:
        raise ValueError("no training song has that source to choose a threshold on")
    began = time.monotonic()
    was_training = estimator.training
    estimator.eval()
    separator = Separator(estimator, "cpu")
    rate = songs[0].sample_rate
    medians: dict[float, float] = {}
    with torch.inference_mode():
        for value in candidates:
            setattr(estimator, key, value)
            scores = [float(usdr(reference, separator(mixture, rate).stems[source])) for mixture, reference in pairs]
            medians[value] = round(statistics.median(scores), 3)
    best = max(medians, key=lambda v: (medians[v], -abs(v - 0.5)))
    setattr(estimator, key, best)
    estimator.hyper[key] = best
    estimator.train(was_training)
    return {
        "key": key,
        "chosen": best,
        "median_usdr_db": {f"{v:g}": medians[v] for v in candidates},
        "source": estimator.sources[source],
        "songs": len(pairs),
        "excerpt_seconds": EXCERPT_SECONDS,
        "seconds": round(time.monotonic() - began, 1),
    }
