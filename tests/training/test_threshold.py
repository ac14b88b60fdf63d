"""Deep Karaoke's α and Lin's θ chosen on the training songs after training: the choice changes what separation
gives, the model keeps it, and a user's own --set is left alone."""

from __future__ import annotations

import numpy as np
import torch

from stemdesk.core.estimators import build_estimator
from stemdesk.core.metrics import usdr
from stemdesk.core.separator import Separator
from stemdesk.io.model_store import load_estimator, read_card, save_model
from stemdesk.training.data import Song
from stemdesk.training.scratch import ScratchRequest, choose_for_model, plan
from stemdesk.training.threshold import choose_threshold

RATE = 16000


def song(name: str, seed: int, seconds: float = 3.0) -> Song:
    """Vocals: a vibrato tone near 600 Hz; the rest: a 2 kHz tone, a low sine and quiet noise, all outside the vocal
    band (440–750 Hz) but the noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    vocals = 0.3 * np.sin(2 * np.pi * 600 * t - 6 * np.cos(2 * np.pi * 5 * t))  # 600 ± 30 Hz at 5 Hz
    drums = 0.2 * np.sin(2 * np.pi * (2000 + 50 * seed) * t)
    bass = 0.4 * np.sin(2 * np.pi * (60 + 10 * seed) * t)
    other = 0.005 * rng.standard_normal(t.shape)
    stems = np.stack([vocals, drums, bass, other])[:, None, :].repeat(2, axis=1)
    return Song.from_float(name, stems, (True,) * 4, RATE)


def karaoke_unsure_of_vocals():
    """A Deep Karaoke network whose vocal probability is 0.28 in the band of the songs' vocal tone (440–750 Hz) and
    0.08 elsewhere, whatever it hears: right about where vocals are, but never sure enough to pass α = 0.5 (what a
    network that learnt that vocals are rare does)."""
    estimator = build_estimator(
        "deep_karaoke",
        {
            "sources": ["vocals", "accompaniment"],
            "stft": {"n_fft": 512, "hop": 128, "sample_rate": RATE},
            "window": 6,
            "filters": [4],
            "hidden": 16,
            "alpha": 0.5,
        },
    )
    frequencies = torch.arange(estimator.bins) * RATE / 512
    probability = torch.where((frequencies > 440) & (frequencies < 750), 0.28, 0.08)
    last = estimator.dense[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(probability).repeat(estimator.window))
    return estimator.eval()


def vocals_usdr(estimator, one: Song) -> float:
    stems = one.audio()
    return float(usdr(stems[0], Separator(estimator, "cpu")(stems.sum(0), RATE).stems[0]))


def test_the_threshold_with_the_best_vocals_on_the_training_songs_is_chosen_and_kept(tmp_path):
    songs = [song(f"s{i}", i) for i in range(4)]
    estimator = karaoke_unsure_of_vocals()
    assert abs(vocals_usdr(estimator, songs[0])) < 0.01  # α = 0.5: silent vocals
    folder = tmp_path / "dk"
    save_model(folder, "dk", estimator, {"description": "test", "paper": {"recipe": "simpson-dk"}}, half=True)

    report = choose_for_model(folder, "alpha", songs[:3])

    scores = report["median_usdr_db"]
    assert abs(scores["0.5"]) < 0.01 and abs(scores["0.3"]) < 0.01  # p = 0.28 never exceeds α = 0.3
    assert scores["0.25"] > 10 and scores["0.1"] == scores["0.25"]  # the vocal band, and nothing else
    assert report["chosen"] == 0.25  # of equal scores, the one nearest the paper's 0.5
    assert report["songs"] == 3 and report["source"] == "vocals"
    card = read_card(folder)
    assert card.config["alpha"] == 0.25 and card.raw["paper"]["threshold"]["chosen"] == 0.25
    assert card.raw["weights_storage"] == "float16"
    assert "- threshold: alpha = 0.25, chosen after training" in (folder / "README.md").read_text()
    # The installed model separates with it: a song it was not chosen on gets its vocals.
    installed, _ = load_estimator(card)
    assert installed.alpha == 0.25
    assert vocals_usdr(installed, songs[3]) > 10


def test_a_confident_network_keeps_the_papers_threshold():
    songs = [song(f"s{i}", i) for i in range(2)]
    estimator = karaoke_unsure_of_vocals()
    with torch.no_grad():
        estimator.dense[-1].bias.add_(torch.logit(torch.tensor(0.7)) - torch.logit(torch.tensor(0.28)))
    report = choose_threshold(estimator, "alpha", songs)  # now 0.7 in the vocal band, 0.34 elsewhere
    assert report["chosen"] == 0.5 and estimator.config()["alpha"] == 0.5


def test_a_threshold_the_user_sets_is_not_chosen_again():
    assert plan(ScratchRequest(data=[], name="dk", recipe="simpson-dk")).recipe.threshold == "alpha"
    assert plan(ScratchRequest(data=[], name="lin", recipe="lin-cnn")).recipe.threshold == "theta"
    assert plan(ScratchRequest(data=[], name="irm", recipe="lin-cnn-irm")).recipe.threshold is None
    mine = plan(ScratchRequest(data=[], name="dk", recipe="simpson-dk", settings={"alpha": 0.3}))
    assert mine.recipe.threshold is None and mine.config.config["alpha"] == 0.3
