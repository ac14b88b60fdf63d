"""MIDI learn over real ports (python-rtmidi on a JACK dummy server started here), mappings and automation."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import mido
import numpy as np
import pytest

from stemdesk.core.errors import MixError
from stemdesk.mixer.effects import Effect
from stemdesk.mixer.midi import MidiController, MidiMap, backend, input_names, mappings_path, open_input
from stemdesk.mixer.mix import FADER_RANGE, Mix
from stemdesk.mixer.render import Renderer

SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def jack():
    """A JACK server of its own name on the dummy driver (no sound card needed), for real MIDI ports. What JACK
    leaves in /dev/shm under that name (a client's semaphore outlives the server) is removed afterwards, and the
    registry JACK keeps there too if this server made it."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (scripts/setup.sh --test installs jackd2)")
    name = f"stemdesk-test-{os.getpid()}"
    had_registry = (SHM / "jack-shm-registry").exists()
    before = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name  # the clients this process opens (python-rtmidi's) find it
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    server = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "44100"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if subprocess.run(["jack_lsp"], capture_output=True, env=env, timeout=5).returncode == 0:
                    break
            except (FileNotFoundError, subprocess.TimeoutExpired):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        if server.poll() is not None:
            pytest.skip("jackd did not start")
        yield "UNIX_JACK"
    finally:
        server.terminate()
        server.wait(10)
        if before is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = before
        if SHM.is_dir():
            for left in SHM.iterdir():
                if f"_{name}_" in left.name or left.name.startswith(f"jack_{name}"):
                    left.unlink(missing_ok=True)
            if not had_registry:
                (SHM / "jack-shm-registry").unlink(missing_ok=True)


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_midi_learn_over_a_real_port_moves_a_fader(jack):
    """A virtual controller port sends CC 7; learn binds it to the vocal fader; CC 7 = 127 puts it at the top."""
    controller_port = backend(jack).open_output("stemdesk-test-controller", virtual=True)
    try:
        assert wait_for(lambda: any("stemdesk-test-controller" in n for n in input_names(jack)))
        name = next(n for n in input_names(jack) if "stemdesk-test-controller" in n)
        mix = Mix()
        renderer = Renderer(mix, ["vocals", "drums"], 44100, 2)
        applied = []

        def apply(changed: Mix) -> None:
            renderer.set_mix(changed)
            applied.append(changed.vocal_db)

        controller = MidiController(mix, apply, autosave=True)
        port = open_input(name, controller, jack)
        try:
            controller.learn()
            controller_port.send(mido.Message("control_change", channel=2, control=7, value=10))
            assert wait_for(lambda: controller._pending_cc == (2, 7))
            binding = controller.touched("vocals/gain_db")
            assert (binding.channel, binding.cc, binding.control) == (2, 7, "vocals/gain_db")
            controller_port.send(mido.Message("control_change", channel=2, control=7, value=127))
            assert wait_for(lambda: applied and applied[-1] == FADER_RANGE[1])
            controller_port.send(mido.Message("control_change", channel=2, control=7, value=0))
            assert wait_for(lambda: applied[-1] == FADER_RANGE[0])
            out = renderer.process(np.ones((2, 2, 256)))
            assert abs(out[0, -1] - (10 ** (FADER_RANGE[0] / 20) + 1)) < 1e-4
            controller_port.send(mido.Message("control_change", channel=3, control=7, value=64))  # unbound
            time.sleep(0.2)
            assert applied[-1] == FADER_RANGE[0]
        finally:
            port.close()
    finally:
        controller_port.close()
    # the mapping was saved for this user and comes back
    assert MidiMap.load().control_for(2, 7) == "vocals/gain_db" and mappings_path().is_file()


def test_moves_during_playback_are_recorded_as_automation():
    """The in-process path (what the port callback calls), with a playhead clock."""
    mix = Mix()
    mix.channel("drums").effects = [Effect.from_dict({"kind": "reverb"})]
    playhead = [0.0]
    controller = MidiController(mix, lambda m: None, MidiMap(), clock=lambda: playhead[0])
    controller.map.bind(0, 1, "drums/fx/0/wet_db")
    controller.map.bind(0, 2, "bass/mute")
    controller.recording = True
    for t, value in ((0.5, 0), (1.0, 127), (1.5, 64)):
        playhead[0] = t
        controller.handle(mido.Message("control_change", control=1, value=value))
    controller.handle(mido.Message("control_change", control=2, value=127))
    points = mix.automation["drums/fx/0/wet_db"]
    assert [t for t, _ in points] == [0.5, 1.0, 1.5]
    assert points[0][1] == -60.0 and points[1][1] == 0.0
    assert mix.channels["bass"].mute
    assert mix.at(0.75).channels["drums"].effects[0].params["wet_db"] == pytest.approx(-30.0)


def test_learn_works_in_either_order_and_relearning_moves_the_binding():
    controller = MidiController(Mix(), lambda m: None)
    controller.learn()
    assert controller.touched("vocals/pan") is None  # control first ...
    controller.handle(mido.Message("control_change", control=10, value=0))  # ... then the knob
    assert controller.map.control_for(0, 10) == "vocals/pan" and not controller.learning
    controller.learn()
    controller.handle(mido.Message("control_change", control=11, value=0))
    controller.touched("vocals/pan")
    assert controller.map.control_for(0, 10) is None and controller.map.control_for(0, 11) == "vocals/pan"
    with pytest.raises(MixError, match="Unknown control"):
        controller.touched("vocals/colour")


def test_bad_mapping_files_are_refused():
    with pytest.raises(MixError, match="channel 0-15"):
        MidiMap.from_json('[{"channel": 99, "cc": 7, "control": "vocals/gain_db"}]')
    with pytest.raises(MixError, match="not valid JSON"):
        MidiMap.from_json("{")


def test_opening_a_missing_port_says_what_to_do(jack):
    with pytest.raises(MixError, match="Cannot open MIDI input"):
        open_input("no such controller", MidiController(Mix(), lambda m: None), jack)


def test_the_app_learns_a_knob_and_the_knob_moves_its_fader(jack, qtbot, tmp_path):
    """In the real window: MIDI learn from the mixer dock, then CC messages move the vocal fader (with undo)."""
    pytest.importorskip("pytestqt")
    import soundfile as sf
    from helpers import song

    from stemdesk.app.window import MainWindow
    from stemdesk.io import settings as settings_store

    path = tmp_path / "song.wav"
    sf.write(str(path), song(3.0), 44100, subtype="PCM_16")
    window = MainWindow(dict(settings_store.DEFAULTS, output_folder=str(tmp_path / "stems"), threads=1), ask=False)
    qtbot.addWidget(window)
    controller = backend(jack).open_output("stemdesk-test-knobs", virtual=True)
    try:
        window.model_box.setCurrentText("tiny-4stem")
        window.open_song(path)
        with qtbot.waitSignal(window.separation_finished, timeout=60_000):
            window.separate()
        assert wait_for(lambda: any("stemdesk-test-knobs" in n for n in input_names(jack)))
        port = next(n for n in input_names(jack) if "stemdesk-test-knobs" in n)
        assert window.connect_midi(port, jack) == port
        window.mixer.learn.setChecked(True)
        controller.send(mido.Message("control_change", control=21, value=30))
        assert wait_for(lambda: window.midi._pending_cc == (0, 21))
        window.mixer.touched("vocals/gain_db")
        assert not window.mixer.learn.isChecked()
        controller.send(mido.Message("control_change", control=21, value=0))
        qtbot.waitUntil(lambda: window.project.mix.vocal_db == FADER_RANGE[0], timeout=5000)
        assert window.mixer.strips["vocals"].fader.value() == int(FADER_RANGE[0] * 10)
        window.undo.undo()
        assert window.project.mix.vocal_db == 0.0
    finally:
        window.shutdown()
        controller.close()


def test_stemdesk_midi_prints_no_raw_alsa_line(tmp_path):
    """Without an ALSA sequencer (this machine has no /dev/snd/seq), libasound used to print its own error line."""
    import subprocess
    import sys

    env = {**os.environ, "STEMDESK_MIDI_API": "LINUX_ALSA", "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "stemdesk", "midi"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0 and "MIDI inputs:" in result.stdout
    assert "ALSA lib" not in result.stderr, result.stderr
