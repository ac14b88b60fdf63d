"""Plugins: the first-party loudness exporter through the entry point, and plugins that fail in every way."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from helpers import make_stems, run

from stemdesk.export.session import BUILTIN_EXPORTERS
from stemdesk.mixer.effects import BUILTIN_EFFECTS
from stemdesk.plugins import load_plugins

loudness = pytest.importorskip("stemdesk_loudness", reason="scripts/setup.sh installs the first-party plugins")


def test_the_loudness_meter_matches_the_bs1770_reference_tones():
    rate = 48000
    t = np.arange(rate * 5) / rate
    tone = np.sin(2 * np.pi * 997 * t)
    assert loudness.integrated_loudness(tone[None], rate) == pytest.approx(-3.01, abs=0.05)  # one channel
    assert loudness.integrated_loudness(np.stack([tone, tone]) * 0.1, rate) == pytest.approx(-20.0, abs=0.05)
    silence = np.zeros((2, rate * 2))
    assert loudness.integrated_loudness(silence, rate) is None


def test_the_first_party_plugin_loads_through_its_entry_point():
    registry, plugins = load_plugins()
    report = {p.name: p for p in plugins}
    assert report["loudness"].loaded and report["loudness"].distribution == "stemdesk-loudness"
    assert registry.exporters["loudness"] is loudness.write_loudness_matched
    assert "loudness" not in BUILTIN_EXPORTERS  # loading plugins writes into no module's state


@pytest.mark.parametrize("target", ["-14", "-23"])
def test_loudness_export_hits_its_target(tmp_path, monkeypatch, target):
    monkeypatch.setenv("STEMDESK_LUFS", target)
    _, folder = make_stems(tmp_path, "24", seconds=6.0)
    code, out, err = run("export", folder, "--session", "loudness", "-o", tmp_path / "song")
    assert code == 0, err
    written = tmp_path / "song.loudness.wav"
    audio, rate = sf.read(str(written), always_2d=True)
    assert loudness.integrated_loudness(audio.T, rate) == pytest.approx(float(target), abs=0.2)
    assert np.abs(audio).max() <= 10 ** (-1 / 20) + 1e-3
    cert = json.loads((tmp_path / "song.loudness.wav.certificate.json").read_text())
    assert cert["settings"]["target_lufs"] == float(target)


BROKEN = {
    "raises": "def register(api):\n    raise RuntimeError('boom')\n",
    "exits": "import sys\ndef register(api):\n    sys.exit(3)\n",
    "import_error": "import no_such_module_anywhere\ndef register(api):\n    pass\n",
    "half": (
        "def register(api):\n    api.add_exporter('half_done', lambda *a: None)\n"
        "    raise ValueError('after registering')\n"
    ),
    "taken": "def register(api):\n    api.add_exporter('dawproject', lambda *a: None)\n",
}


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """Installable-looking plugins on sys.path: modules plus a dist-info with entry points."""
    for name, code in {
        **BROKEN,
        "good": textwrap.dedent("""
            from stemdesk.mixer.effects import EffectSpec, Param
            import pedalboard
            def register(api):
                api.add_exporter("plain_list", lambda stems, mix, out, tempo: out)
                api.add_effect(EffectSpec("test_chorus", "Chorus", {"rate_hz": Param("Hz", 0.1, 10.0, 1.0)},
                                          lambda p: pedalboard.Chorus(rate_hz=p["rate_hz"])))
            """),
    }.items():
        (tmp_path / f"plugin_{name}.py").write_text(code)
    info = tmp_path / "stemdesk_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stemdesk-test-plugins\nVersion: 0.1\n")
    points = "\n".join(f"{name} = plugin_{name}:register" for name in [*BROKEN, "good"])
    (info / "entry_points.txt").write_text(f"[stemdesk.plugins]\n{points}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_failing_plugins_are_disabled_and_named_and_leave_nothing_behind(plugin_dir):
    points = [p for p in importlib.metadata.entry_points(group="stemdesk.plugins") if p.value.startswith("plugin_")]
    assert len(points) == len(BROKEN) + 1
    registry, plugins = load_plugins(points)
    report = {p.name: p for p in plugins}
    for name in BROKEN:
        assert not report[name].loaded and f'Plugin "{name}"' in report[name].error
        assert "disabled" in report[name].error and "pip uninstall stemdesk-test-plugins" in report[name].error
    assert "RuntimeError: boom" in report["raises"].error
    assert "ModuleNotFoundError" in report["import_error"].error
    exporters = registry.exporters
    assert "half_done" not in exporters and exporters["dawproject"] is BUILTIN_EXPORTERS["dawproject"]
    assert report["good"].loaded and "plain_list" in exporters and "test_chorus" in registry.effects
    assert "plain_list" not in BUILTIN_EXPORTERS and "test_chorus" not in BUILTIN_EFFECTS
    # A mix may use the plugin's effect only when read with the registry that has it.
    from stemdesk.core.errors import MixError
    from stemdesk.mixer.mix import Mix

    data = {"master": [{"kind": "test_chorus", "params": {"rate_hz": 2.0}}]}
    assert Mix.from_dict(data, registry).master[0].plugin() is not None
    with pytest.raises(MixError, match="Unknown effect 'test_chorus'"):
        Mix.from_dict(data)


def test_the_cli_starts_with_a_broken_plugin_installed(plugin_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "stemdesk", "plugins"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert 'Plugin "raises" (plugin_raises:register) failed to load and is disabled' in done.stderr
    assert "good (stemdesk-test-plugins): loaded: exporter plain_list, effect test_chorus" in done.stdout
    assert "raises (stemdesk-test-plugins): DISABLED" in done.stdout
