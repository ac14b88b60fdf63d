"""How the benchmarks score a system on songs with known stems: uSDR per stem and song (the MDX definition), BSS
Eval v4 on a few of them, and the oracles. benchmarks/quality.py (the shipped models' quality claims) and the lab's
experiment benchmarks (lab/benchmarks/) share it, with the validation songs of ../shared/data
(`stemdesk.training.validation.split`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stemdesk.core.chunker import Chunker
from stemdesk.core.metrics import usdr
from stemdesk.core.postprocess import oracle_masks
from stemdesk.core.stft import STFT, STFTConfig
from stemdesk.training.metrics import bss_eval_v4
from stemdesk.training.train import regroup, source_map

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = ["vocals", "drums", "bass", "other"]
TWO = ["vocals", "accompaniment"]
ORACLE_STFT = STFTConfig(n_fft=4096, hop=1024)
EXCERPT_SECONDS = 20.0
BSS_SONGS = 5


def bss_subset(songs) -> set[int]:
    """BSS Eval is slow (about 2 s per second of 4-stem audio): it runs on the BSS_SONGS songs with the most
    vocals."""
    count = BSS_SONGS
    energy = [float(np.square(song.stems[0].astype(np.float32)).mean()) for song in songs]
    return set(int(i) for i in np.argsort(energy)[::-1][:count])


def separate_song(fn, audio: torch.Tensor, rate: int) -> torch.Tensor:
    chunker = Chunker(lambda x: fn(x), int(20 * rate), int(rate))
    return chunker.run(audio)


def score(
    name: str, sources: list[str], estimate_fn, songs, seconds_per_second: float | None, parameters: int | None
) -> dict:
    """estimate_fn(song_index, mix) → stems in ``sources`` order (sources, channels, length)."""
    two_map = source_map(TWO, sources) if sources != TWO else None
    bss_songs = bss_subset(songs)
    usdr_rows: dict[str, list[float]] = {}
    per_song: dict[str, dict[str, float]] = {}
    bss_rows: dict[str, dict[str, list[float]]] = {}
    for index, song in enumerate(songs):
        truth4 = song.audio()
        truth = regroup(truth4, source_map(sources, SOURCES))
        estimate = estimate_fn(index, truth4.sum(0))
        views = [(sources, truth, estimate, set(sources))]
        if two_map is not None:  # a 4-stem system's accompaniment: the sum of its other stems
            views.append((TWO, regroup(truth, two_map), regroup(estimate, two_map), {"accompaniment"}))
        usable = {s: all(song.usable[i] for i in idx) for s, idx in zip(sources, source_map(sources, SOURCES))}
        start, stop = song.loudest_window(0, EXCERPT_SECONDS)
        with_bss = index in bss_songs
        for names, ref, est, include in views:
            values = usdr(ref, est)
            if with_bss:
                bss = bss_eval_v4(ref[..., start:stop].numpy(), est[..., start:stop].numpy(), song.sample_rate)
            for i, source in enumerate(names):
                # Undefined where the reference is silent (instrumental excerpts, songs without a bass stem).
                silent = float(ref[i].pow(2).mean()) < 1e-8
                if source not in include or not usable.get(source, True) or silent:
                    continue
                usdr_rows.setdefault(source, []).append(float(values[i]))
                per_song.setdefault(song.name, {})[source] = round(float(values[i]), 3)
                for metric in ("sdr", "sir", "sar") if with_bss else ():
                    bss_rows.setdefault(source, {}).setdefault(metric, []).append(float(bss[metric][i]))
    result = {
        "system": name,
        "sources": sources,
        "parameters": parameters,
        "speed_x_realtime": seconds_per_second,
        "usdr": {},
        "bss": {},
        "usdr_per_song": per_song,
    }
    for source, values in usdr_rows.items():
        result["usdr"][source] = round(float(np.median(values)), 2)
        if source in bss_rows:
            result["bss"][source] = {m: round(float(np.nanmedian(v)), 2) for m, v in bss_rows[source].items()}
    return result


def oracle_row(kind: str, songs) -> dict:
    """Score an oracle (masks from the true sources at the shipped model's STFT) on ``songs``."""
    stft = STFT(ORACLE_STFT)

    def oracle(index, mix):
        spec = stft(songs[index].audio())  # (sources, channels, bins, frames)
        masks = oracle_masks(spec.unsqueeze(0), kind)[0]
        stems = stft.inverse(masks * spec.sum(0), mix.shape[-1])
        stems[-1] = mix - stems[:-1].sum(0)
        return stems

    row = score(f"oracle_{kind}", SOURCES, oracle, songs, None, None)
    row["paper"] = (
        f"oracle {kind.upper()} at STFT 4096/1024" if kind != "mix" else "MIX: each source gets 1/4 of the mixture"
    )
    if kind == "mix":  # the other way of doing nothing: the whole mixture as the vocal estimate
        whole = [float(usdr(s.audio()[:1], s.audio().sum(0, keepdim=True))[0]) for s in songs if s.usable[0]]
        row["mixture_as_vocals"] = round(float(np.median(whole)), 2)
    return row
