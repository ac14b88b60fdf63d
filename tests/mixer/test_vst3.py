"""A real VST3, built here from Debian's dpf-source, as an insert in the mixer; and a plugin that crashes."""

from __future__ import annotations

import numpy as np
import pytest

from stemdesk.core.errors import MixError
from stemdesk.mixer.effects import Effect
from stemdesk.mixer.mix import Mix
from stemdesk.mixer.render import Renderer
from stemdesk.mixer.vst3 import scan


def test_scan_lists_the_parameters_by_name(gain_plugin):
    description = scan(gain_plugin)
    assert description["name"] == "StemDesk Test Gain"
    gain = description["parameters"]["gain_db"]
    assert (gain["min"], gain["max"], gain["unit"]) == (-60.0, 12.0, "dB")
    assert "invert" in description["parameters"]


def test_vst3_insert_changes_the_audio_as_its_parameter_says(gain_plugin):
    rng = np.random.default_rng(0)
    stems = (rng.standard_normal((2, 2, 20000)) * 0.1).astype(np.float32)
    mix = Mix()
    mix.channel("vocals").effects = [Effect("vst3", {"gain_db": -6.0}, path=str(gain_plugin))]
    renderer = Renderer(mix, ["vocals", "drums"], 44100, 2)
    out = renderer.process(stems)
    expected = stems[0] * 10 ** (-6 / 20) + stems[1]
    assert np.abs(out - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4
    # change the parameter live: the plugin instance is kept and its parameter moves
    mix.channels["vocals"].effects = [Effect("vst3", {"gain_db": -6.0, "invert": 1.0}, path=str(gain_plugin))]
    renderer.set_mix(mix)
    out = renderer.process(stems)
    expected = -stems[0] * 10 ** (-6 / 20) + stems[1]
    assert np.abs(out - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4


def test_vst3_parameters_are_checked_against_the_scan(gain_plugin):
    with pytest.raises(MixError, match="has no parameter 'volume'"):
        Effect("vst3", {"volume": 1.0}, path=str(gain_plugin)).plugin()
    with pytest.raises(MixError, match="out of range; use -60 to 12 dB"):
        Effect("vst3", {"gain_db": 40.0}, path=str(gain_plugin)).plugin()


def test_a_crashing_plugin_is_refused_and_the_app_survives(crashing_plugin):
    with pytest.raises(MixError, match=r"crashed while loading \(signal 11\); it was not loaded"):
        scan(crashing_plugin)
    mix = Mix()
    mix.channel("vocals").effects = [Effect("vst3", {}, path=str(crashing_plugin))]
    with pytest.raises(MixError, match="crash"):
        Renderer(mix, ["vocals"], 44100, 2)


def test_a_missing_plugin_says_so(tmp_path):
    with pytest.raises(MixError, match="does not exist"):
        scan(tmp_path / "nothing.vst3")
