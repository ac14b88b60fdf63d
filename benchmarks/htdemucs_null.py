"""How HTDemucs's residual is given back to its stems (`spread_residual`), against the raw network's stems:
uSDR per stem on 7.8-s excerpts (one network call each, so the chunker plays no part) at 0:45 and 2:30 of each
cc0-efree song, which HTDemucs never saw. A stem whose truth is silent in an excerpt is left out for it.

    .venv/bin/python benchmarks/htdemucs_null.py       (needs `stemdesk models install htdemucs`)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import soundfile as sf
import torch

from stemdesk.core.masks import spread_residual
from stemdesk.core.metrics import usdr
from stemdesk.core.stft import STFT, STFTConfig
from stemdesk.io.model_store import load_estimator

torch.set_num_threads(1)
model, _ = load_estimator("htdemucs")
stft = STFT(STFTConfig())
rows = {k: [] for k in ("raw", "spectral", "even", "last")}
resid = []
for song in sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "cc0-efree").iterdir()):
    for start in (45, 150):
        st = np.stack(
            [
                sf.read(str(song / f"{n}.ogg"), start=start * 44100, frames=343980, dtype="float32", always_2d=True)[
                    0
                ].T
                for n in ("drums", "bass", "other", "vocals")
            ]
        )
        truth = torch.from_numpy(st).double()
        mix = truth.sum(0)
        with torch.inference_mode():
            raw = model(mix.float()[None])[0].double()
        r = mix - raw.sum(0)
        resid.append(10 * np.log10(float(r.square().sum() / mix.square().sum())))
        audible = truth.square().mean(dim=(1, 2)) > 1e-6
        for k in rows:
            est = raw if k == "raw" else spread_residual(raw, mix, k, stft)
            v = usdr(truth, est).numpy()
            v[~audible.numpy()] = np.nan
            rows[k].append(v)
        print(song.name, start, {k: np.round(rows[k][-1], 2).tolist() for k in rows}, flush=True)
print("residual dB below mix", np.round(resid, 1).tolist())
for k in rows:
    a = np.array(rows[k])
    print(
        k,
        "median drums/bass/other/vocals",
        np.round(np.nanmedian(a, 0), 2).tolist(),
        "mean",
        np.round(np.nanmean(a, 0), 2).tolist(),
    )
