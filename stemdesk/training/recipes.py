"""The seed methods as named training recipes: each paper's estimator, objective, targets, input framing,
pre-training, augmentation and the post-processing separation applies, for `stemdesk train --recipe NAME`.

A recipe is data. Its estimator config holds what shapes the network and what the estimator itself does at
inference (Deep Karaoke's averaging over sliding excerpts and confidence α, Lin et al.'s threshold θ); its
``postprocessing`` is what separation does after the estimator (energy gate, binarisation, Wiener filtering), which
the exported model's card asks for. `describe` says all of it in words, from the same data, so what a card says is
what the model does.

Sizes: each network is sized so that its weights, stored as float16, fit in 10 MB (`tests/training` checks it) and
a step trains on one CPU core in seconds. The papers' networks are larger; where a recipe departs from its paper
the ``note`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stemdesk.core.errors import StemDeskError
from stemdesk.core.estimators import BUILTIN_ESTIMATORS, WaveformEstimator
from stemdesk.core.postprocess import PostProcessing

from .augment import NO_AUGMENTATION, Augmentation
from .pretrain import PRETRAINING

FOUR = ["vocals", "drums", "bass", "other"]
TWO = ["vocals", "accompaniment"]
AT22 = {"sample_rate": 22050}

# What each objective trains, in words (see stemdesk.core.estimators.OBJECTIVES).
OBJECTIVE_WORDS = {
    "magnitude_l1": "L1 distance between the masked mixture's magnitudes and the sources'",
    "magnitude_mse": "mean squared error between the masked mixture's magnitudes and the sources'",
    "dual": "0.9 × magnitude MSE + 0.1 × time-domain MSE of the masked mixture (dual loss)",
    "usdr": "minus the mean uSDR (global SDR, the metric of the validation) of each example's masked-mixture "
    "stems against its sources, silent sources left out",
    "usdr_silent": "minus the mean uSDR of each example's masked-mixture stems against its sources, a source silent "
    "in the example scored by how far below the mixture its estimate stays (at most 30 dB)",
    "usdr_capped": "minus the mean thresholded uSDR of each example's masked-mixture stems (at most 30 dB each, so "
    "examples where one stem sounds alone do not outweigh those where stems overlap), a silent source scored by how "
    "far below the mixture its estimate stays",
    "ibm_bce": "binary cross-entropy against the ideal binary mask of {first}",
    "ibm_bce_windows": "binary cross-entropy of each sliding excerpt's own prediction against the ideal binary "
    "mask of {first} over its frames (the average over excerpts is for inference only)",
    "irm_mse": "mean squared error between sigmoid masks and the ideal ratio masks",
    "argmax_nll": "softmax over the sources, negative log-likelihood of the loudest source in each bin",
}


@dataclass(frozen=True)
class Recipe:
    """A paper's method as `stemdesk train` trains it from scratch.

    ``config``: the estimator's config (sources, STFT and its own settings); ``training``: TrainConfig fields
    (batch, lr, excerpt_seconds, validate_every); ``remix`` and ``augmentation``: what the sampler does;
    ``postprocessing``: what separation applies after the estimator (written into the model's card);
    ``pretrain``: a stage before training (one of PRETRAINING) and the share of the time budget it takes."""

    name: str
    estimator: str
    paper: str  # the paper as people cite it; "" for an estimator's own defaults
    variant: str  # what this variant is, in a few words
    config: Mapping[str, Any]
    training: Mapping[str, Any] = field(default_factory=dict)
    remix: float = 0.5
    augmentation: Augmentation = Augmentation()
    postprocessing: PostProcessing = PostProcessing()
    pretrain: str | None = None
    pretrain_share: float = 0.0
    note: str = ""  # where the recipe departs from the paper, and why
    # An inference threshold of the estimator's config (Deep Karaoke's "alpha", Lin's "theta") chosen on the
    # training songs once training ends (stemdesk/training/threshold.py); None: the config's value stands.
    threshold: str | None = None

    def __post_init__(self) -> None:
        if self.pretrain is not None and self.pretrain not in PRETRAINING:
            raise ValueError(f"pre-training must be one of {PRETRAINING}, not {self.pretrain!r}")
        if not 0.0 <= self.pretrain_share < 1.0:
            raise ValueError("pretrain_share is a share of the time budget, from 0 up to (not including) 1")


# The settings every recipe trains with unless its paper says otherwise: the same for all, so that an equal CPU
# budget compares methods rather than schedules.
TRAINING = {"excerpt_seconds": 6.0, "batch": 8, "lr": 1e-3, "validate_every": 100}
# The frame-context networks see a fraction of a second around each frame, and their papers train on one context
# window per example: many short excerpts from many songs instead of a few long ones (each frame costs them a
# dense layer over its whole context, so six-second excerpts made a step several times dearer than the others').
SHORT_EXCERPTS = {"excerpt_seconds": 1.0, "batch": 16}
# The DenseNets keep every layer's output at full resolution: a batch of six-second excerpts did not fit in memory.
DENSE_EXCERPTS = {"excerpt_seconds": 1.0}


# A threshold chosen after training, in a card's settings (its threshold line gives the value, which its config holds).
CHOSEN = "{}, chosen on the training songs once training ends (the card's threshold line)"


def _recipes(*recipes: Recipe) -> dict[str, Recipe]:
    return {recipe.name: recipe for recipe in recipes}


SIMPSON = "Simpson et al. 2015 (Deep Karaoke)"
ROMA = "Roma et al. 2018"
LIN = "Lin et al. 2018"
GEORGE = "George et al."
PRETET = "Prétet et al. 2018"

_ROMA = {"sources": FOUR, "stft": {"n_fft": 2048, "hop": 256, **AT22}, "context_frames": 11, "hidden": 256}
_GEORGE = {"sources": FOUR, "stft": {"n_fft": 4096, "hop": 1024}, "hidden": 128, "layers": 2}
_LIN = {
    "sources": TWO,
    "stft": {"n_fft": 4096, "win_length": 1024, "hop": 256, **AT22},
    "context_frames": 9,
    "filters": [8, 16],
    "hidden": 256,
}
_UNET = {"sources": TWO, "stft": {"n_fft": 4096, "hop": 1024}, "base": 6, "max_bins": 1024, "patch": 256}
_DENSE = {"sources": TWO, "stft": {"n_fft": 4096, "hop": 1024}, "growth": 8, "layers": 2, "levels": 3}

PAPER_RECIPES: Mapping[str, Recipe] = _recipes(
    Recipe(
        "simpson-dk",
        "deep_karaoke",
        SIMPSON,
        "convolutional DNN on 20-frame excerpts, probabilistic binary vocal masks",
        {
            "sources": TWO,
            "stft": {"n_fft": 2048, "hop": 512},
            "window": 20,
            "filters": [8, 16],
            "hidden": 96,
            "alpha": 0.5,
            "objective": "ibm_bce_windows",
        },
        training=SHORT_EXCERPTS,
        note="hidden layer of 96 units to fit 10 MB",
        threshold="alpha",
    ),
    Recipe(
        "roma-cnn1",
        "roma_cnn",
        ROMA,
        "cnn1: convolutions, sigmoid masks trained with MSE against ratio masks, renormalised",
        {**_ROMA, "head": "cnn1", "filters": [16, 16]},
        training=SHORT_EXCERPTS,
    ),
    Recipe(
        "roma-cnn2",
        "roma_cnn",
        ROMA,
        "cnn2: convolutions, softmax trained with NLL, binary (argmax) masks",
        {**_ROMA, "head": "cnn2", "filters": [16, 16]},
        training=SHORT_EXCERPTS,
    ),
    Recipe(
        "roma-dnn",
        "roma_cnn",
        ROMA,
        "the fully connected baseline (no convolutions, 5 frames), sigmoid masks and MSE",
        {**_ROMA, "head": "cnn1", "filters": [], "context_frames": 5},
        training=SHORT_EXCERPTS,
    ),
    Recipe(
        "lin-cnn",
        "lin_cnn",
        LIN,
        "pixel-wise CNN on 9×2049 excerpts, IBM cross-entropy with 0.02/0.98 targets, threshold θ, "
        "autoencoder pre-training",
        {**_LIN, "targets": [0.02, 0.98], "theta": 0.5},
        training=SHORT_EXCERPTS,
        pretrain="autoencoder",
        pretrain_share=0.2,
        note="the autoencoder is the separator's own encoder with a linear decoder (stemdesk/training/pretrain.py)",
        threshold="theta",
    ),
    Recipe(
        "lin-cnn-irm",
        "lin_cnn",
        LIN,
        "the same CNN and pre-training trained with MSE against the ideal ratio mask, separating with the soft "
        "mask (no θ), in place of the paper's IBM and cross-entropy",
        {**_LIN, "objective": "irm_mse"},
        training=SHORT_EXCERPTS,
        pretrain="autoencoder",
        pretrain_share=0.2,
        note="not a recipe of the paper: the comparison that isolates its IBM + cross-entropy choice",
    ),
    Recipe("george-bilstm-l1", "open_unmix", GEORGE, "BiLSTM, L1 loss", {**_GEORGE, "objective": "magnitude_l1"}),
    Recipe("george-bilstm-mse", "open_unmix", GEORGE, "BiLSTM, MSE loss", {**_GEORGE, "objective": "magnitude_mse"}),
    Recipe(
        "george-bilstm-dual",
        "open_unmix",
        GEORGE,
        "BiLSTM, dual magnitude + time loss",
        {**_GEORGE, "objective": "dual"},
    ),
    Recipe(
        "george-transformer-l1",
        "open_unmix",
        GEORGE,
        "transformer in place of the BiLSTM, L1 loss",
        {**_GEORGE, "trunk": "transformer", "objective": "magnitude_l1"},
    ),
    Recipe(
        "george-transformer-dual",
        "open_unmix",
        GEORGE,
        "transformer in place of the BiLSTM, dual magnitude + time loss",
        {**_GEORGE, "trunk": "transformer", "objective": "dual"},
    ),
    Recipe(
        "pretet-unet",
        "unet",
        PRETET,
        "Spleeter's U-Net layout, one per source, L1 loss, no augmentation",
        {**_UNET, "objective": "magnitude_l1"},
        remix=0.0,
        augmentation=NO_AUGMENTATION,
        note="base width 6 (Spleeter's is 16) to fit 10 MB",
    ),
    Recipe(
        "pretet-unet-augmented",
        "unet",
        PRETET,
        "the same U-Net, trained with channel swap, gain, remixing and pitch/tempo changes",
        {**_UNET, "objective": "magnitude_l1"},
        remix=0.5,
        augmentation=Augmentation(pitch_time=0.2),
        note="base width 6 (Spleeter's is 16) to fit 10 MB; pitch/tempo changes through pedalboard cost about "
        "a second of CPU per 6-s example, so 1 example in 5 gets one",
    ),
    Recipe(
        "pretet-unet-post",
        "unet",
        PRETET,
        "the same U-Net, separated with an energy gate on vocals, binarised masks and Wiener filtering",
        {**_UNET, "objective": "magnitude_l1"},
        remix=0.0,
        augmentation=NO_AUGMENTATION,
        postprocessing=PostProcessing(wiener=1, vocal_gate=(0.5, 0.05), binarise=10.0),
        note="base width 6 (Spleeter's is 16) to fit 10 MB",
    ),
    Recipe(
        "pretet-densenet",
        "densenet",
        PRETET,
        "DenseNet (Takahashi & Mitsufuji 2017) in the same study, L1 loss",
        {**_DENSE, "objective": "magnitude_l1"},
        training=DENSE_EXCERPTS,
        remix=0.0,
        augmentation=NO_AUGMENTATION,
    ),
    Recipe(
        "pretet-mmdensenet",
        "mmdensenet",
        PRETET,
        "multi-band MMDenseNet (Takahashi & Mitsufuji 2017) in the same study, L1 loss",
        {**_DENSE, "bands": [0, 128, 384], "objective": "magnitude_l1"},
        training=DENSE_EXCERPTS,
        remix=0.0,
        augmentation=NO_AUGMENTATION,
    ),
)


def recipes_for(estimator: str) -> list[str]:
    """The paper recipes that train ``estimator``, the paper's main variant first."""
    return [name for name, recipe in PAPER_RECIPES.items() if recipe.estimator == estimator]


def own_defaults(estimator: str) -> Recipe:
    """An estimator without a paper recipe, trained with its own defaults and declared objective on four stems."""
    return Recipe(
        estimator,
        estimator,
        "",
        f"{estimator} with its own defaults and declared objective",
        {"sources": FOUR, "stft": {"n_fft": 4096, "hop": 1024}},
    )


def resolve(estimator: str | None, recipe: str | None) -> Recipe:
    """The recipe `stemdesk train --estimator NAME [--recipe NAME]` asks for: the named recipe (whose estimator
    must be NAME when both are given), else the first paper recipe of the estimator, else its own defaults.
    Raises StemDeskError saying what to choose instead."""
    known = ", ".join(PAPER_RECIPES)
    if recipe is not None:
        if recipe not in PAPER_RECIPES:
            raise StemDeskError(f"There is no recipe named {recipe!r}. The recipes are: {known}.")
        chosen = PAPER_RECIPES[recipe]
        if estimator is not None and estimator != chosen.estimator:
            theirs = ", ".join(recipes_for(estimator)) or "none (its own defaults: leave out --recipe)"
            raise StemDeskError(
                f"The recipe {recipe} trains {chosen.estimator}, not {estimator}. Leave out --estimator, or choose "
                f"a recipe of {estimator}: {theirs}."
            )
        return chosen
    if estimator is None:
        raise StemDeskError(f"Name the estimator (--estimator) or the recipe (--recipe) to train: {known}.")
    if estimator not in BUILTIN_ESTIMATORS:
        raise StemDeskError(
            f"There is no estimator named {estimator!r}. The estimators are: {', '.join(sorted(BUILTIN_ESTIMATORS))}."
        )
    if issubclass(BUILTIN_ESTIMATORS[estimator], WaveformEstimator):
        raise StemDeskError(
            f"{estimator} predicts waveforms; training from scratch is built for mask estimators. Import its "
            "released weights instead (stemdesk models install or import)."
        )
    if estimator == "mix":
        raise StemDeskError("mix has nothing to train: it gives each stem an equal share of the mixture.")
    if estimator == "crossover":
        raise StemDeskError("crossover has nothing to train: it splits by fixed frequency bands.")
    mine = recipes_for(estimator)
    return PAPER_RECIPES[mine[0]] if mine else own_defaults(estimator)


def with_settings(config: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``settings`` (``--set KEY=VALUE``) applied; a dotted key sets inside a mapping
    (``stft.hop``)."""
    out = json.loads(json.dumps(dict(config)))  # a deep copy of plain JSON values
    for key, value in settings.items():
        *parents, last = key.split(".")
        target = out
        for part in parents:
            inner = target.get(part)
            if not isinstance(inner, dict):
                raise StemDeskError(f"--set {key}: the config has no settings under {part!r}.")
            target = inner
        target[last] = value
    return out


def describe(recipe: Recipe, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What the recipe sets, in words, from its data: the lines a model card and `stemdesk train --recipes`
    show. ``config``: the estimator's full config (its `config()`, with the defaults the recipe left out)."""
    from stemdesk.core.estimators import build_estimator

    config = dict(config) if config is not None else build_estimator(recipe.estimator, recipe.config).config()
    stft = config["stft"]
    sources = config["sources"]
    rate = stft.get("sample_rate", 44100)
    window = stft.get("win_length") or stft["n_fft"]
    framing = (
        f"STFT at {rate} Hz: {window}-sample window"
        + (f" zero-padded to a {stft['n_fft']}-point FFT" if window != stft["n_fft"] else f", FFT {stft['n_fft']}")
        + f", hop {stft['hop']}: {stft['n_fft'] // 2 + 1} bins"
    )
    if "context_frames" in config:
        framing += f"; each frame's masks from {config['context_frames']} frames of context"
    if "window" in config and recipe.estimator == "deep_karaoke":
        framing += f"; masks for {config['window']}-frame excerpts sliding by one frame"
    channels = "each channel on its own" if config.get("channels") == 1 else "stereo"
    words = {
        "estimator": f"{recipe.estimator} ({channels}), stems {', '.join(sources)}",
        "input": framing,
        "objective": OBJECTIVE_WORDS[config["objective"]].format(first=sources[0]),
    }
    targets = config.get("targets")
    if targets is not None and config["objective"].startswith("ibm_bce"):
        words["objective"] += f", targets {targets[0]:g} / {targets[1]:g}"
    inference = []

    def threshold(key: str, symbol: str) -> str:
        return CHOSEN.format(symbol) if recipe.threshold == key else f"{symbol} = {config[key]:g}"

    if config.get("alpha") is not None and recipe.estimator == "deep_karaoke":
        inference.append(
            f"the probabilities of the {config['window']} excerpts covering each bin averaged, then binary masks: "
            f"vocals where they exceed the confidence {threshold('alpha', 'α')}"
        )
    if config.get("theta") is not None:
        inference.append(f"vocal mask 1 where the network's output exceeds {threshold('theta', 'θ')}, else 0")
    if config.get("head") == "cnn2":
        inference.append("the loudest source's mask 1, the others 0 (argmax)")
    if config.get("mask") == "sigmoid" and not config.get("residual") and len(sources) > 2:
        inference.append("sigmoid masks renormalised to sum to one")
    post = recipe.postprocessing
    if post.vocal_gate is not None:
        inference.append(
            f"energy gate: vocals silenced where below {post.vocal_gate[1]:g} × the mixture's energy for at least "
            f"{post.vocal_gate[0]:g} s"
        )
    if post.binarise is not None:
        inference.append(f"masks binarised with f_α(x) = 1 / (1 + exp(−α(x − 0.5))), α = {post.binarise:g}")
    if post.wiener:
        inference.append(f"{post.wiener} iteration(s) of multichannel Wiener filtering")
    words["separation"] = "; ".join(inference) or "the masks as they are"
    words["separation"] += " (then the null rule: the stems sum to the mixture)"
    aug = recipe.augmentation
    parts = [f"remixing across songs p = {recipe.remix:g}"] if recipe.remix else []
    if aug.gain_db is not None:
        parts.append(f"gain {aug.gain_db[0]:g}…{aug.gain_db[1]:+g} dB per source")
    if aug.channel_swap:
        parts.append(f"channel swap p = {aug.channel_swap:g}")
    if aug.polarity:
        parts.append(f"polarity p = {aug.polarity:g}")
    if aug.pitch_time:
        parts.append(
            f"pitch ±{aug.semitones:g} semitones and tempo ±{aug.tempo:.0%} (pedalboard) p = {aug.pitch_time:g}"
        )
    words["augmentation"] = ", ".join(parts) or "none"
    if recipe.pretrain == "autoencoder":
        words["pre-training"] = (
            f"autoencoder on the training mixtures for {recipe.pretrain_share:.0%} of the time budget; its encoder "
            "initialises the separator"
        )
    if recipe.note:
        words["note"] = recipe.note
    return words
