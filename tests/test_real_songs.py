"""Real songs from ../shared/data through the real CLI with the shipped default model (skipped without the data)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, needs_data
from helpers import assert_stems_null, run
from pedalboard.io import AudioFile

from stemdesk.core.metrics import usdr

pytestmark = [needs_data(), pytest.mark.data]
STEMS = ["vocals", "drums", "bass", "other"]
VALID_SONG = DATA / "cc0-efree" / "3.Sodium"  # never trained on (stemdesk/training/validation.py)


def reference(seconds: float, offset: float = 190.0) -> np.ndarray:
    """The validation song's stems (sources, channels, length), ``seconds`` long from ``offset``."""
    start, n = int(offset * 44100), int(seconds * 44100)
    return np.stack([sf.read(str(VALID_SONG / f"{s}.ogg"), start=start, frames=n, dtype="float32")[0].T for s in STEMS])


@pytest.fixture(scope="module")
def real_song(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    stems = reference(40.0)
    mix44 = folder / "sodium-44k.wav"
    sf.write(str(mix44), stems.sum(0).T, 44100, subtype="PCM_24")
    mix48 = folder / "sodium-48k.flac"
    with AudioFile(str(mix44)).resampled_to(48000) as source:
        audio = source.read(source.frames)
    sf.write(str(mix48), audio.T, 48000, subtype="PCM_16")
    return {"44k": mix44, "48k": mix48, "stems": stems}


@pytest.mark.parametrize("which", ["44k", "48k"])
@pytest.mark.parametrize("fmt, depth", [("wav", "16"), ("wav", "24"), ("flac", "16"), ("flac", "24"), ("wav", "32f")])
def test_default_model_stems_null_against_real_songs(tmp_path, real_song, which, fmt, depth):
    song = real_song[which]
    code, _, err = run("separate", song, "-o", tmp_path, "--format", fmt, "--bit-depth", depth, "--threads", "1")
    assert code == 0, err
    assert_stems_null(song, [tmp_path / song.stem / f"{s}.{fmt}" for s in STEMS], depth)


@pytest.mark.slow
def test_default_model_beats_an_equal_split_on_songs_it_never_saw():
    """Median uSDR over the validation songs (split by song from the training songs), per stem, against MIX."""
    import torch

    from stemdesk.core.chunker import Chunker
    from stemdesk.core.separator import Separator
    from stemdesk.io.model_store import load_estimator
    from stemdesk.training.dataset import load_songs
    from stemdesk.training.validation import split

    torch.set_num_threads(1)
    estimator, _ = load_estimator("stemdesk-4stem")
    separator = Separator(estimator)
    _, valid_dirs = split(DATA)
    model, equal = [], []
    for song in load_songs(valid_dirs, STEMS):
        truth = song.audio()
        mix = truth.sum(0)
        estimate = Chunker(lambda x: separator(x, 44100).stems, 20 * 44100, 44100).run(mix)
        # uSDR is undefined for a silent stem (stem by stem, and the equal split as a view: a whole song's stems are
        # several hundred MB each, and the suite's one process has a memory budget)
        audible = torch.stack([stem.pow(2).mean() > 1e-8 for stem in truth])
        model.append(torch.where(audible, usdr(truth, estimate), torch.nan))
        del estimate
        equal.append(torch.where(audible, usdr(truth, (mix / 4).expand_as(truth)), torch.nan))
    model_median = torch.stack(model).nanmedian(dim=0).values
    equal_median = torch.stack(equal).nanmedian(dim=0).values
    assert (model_median > equal_median + 0.5).all(), (model_median, equal_median)
