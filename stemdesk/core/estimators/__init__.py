"""Estimators registered by name. The table is a constant; plugins extend it through the io layer's model store."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .bag import Bag
from .band_mlp import BandMLP
from .base import OBJECTIVES, AnyEstimator, Estimator, WaveformEstimator
from .cascade import Cascade
from .context_nets import DeepKaraoke, LinCNN, RomaCNN
from .crossover import Crossover
from .densenet import DenseNetEstimator, MMDenseNet
from .htdemucs import HTDemucs
from .mdx23c import MDX23C
from .mix import MixEstimator
from .open_unmix import OpenUnmix
from .refined import Refined
from .roformer import BSRoformer, MelBandRoformer
from .umx import UMX
from .unet import UNet

BUILTIN_ESTIMATORS: Mapping[str, type[AnyEstimator]] = MappingProxyType(
    {
        cls.kind: cls
        for cls in (
            MixEstimator,
            Crossover,
            BandMLP,
            OpenUnmix,
            Refined,
            DeepKaraoke,
            RomaCNN,
            LinCNN,
            UNet,
            DenseNetEstimator,
            MMDenseNet,
            Cascade,
            HTDemucs,
            Bag,
            UMX,
            BSRoformer,
            MelBandRoformer,
            MDX23C,
        )
    }
)


def build_estimator(
    kind: str, config: Mapping[str, Any], table: Mapping[str, type[AnyEstimator]] = BUILTIN_ESTIMATORS
) -> AnyEstimator:
    """Construct an estimator from its registry name and the config a model card stores."""
    try:
        cls = table[kind]
    except KeyError:
        known = ", ".join(sorted(table))
        raise KeyError(f"unknown estimator {kind!r}; known estimators: {known}") from None
    return cls(**dict(config))


__all__ = ["BUILTIN_ESTIMATORS", "OBJECTIVES", "AnyEstimator", "Estimator", "WaveformEstimator", "build_estimator"]
