"""The session layer, without Qt: the workspace both front ends edit and the tasks both of them run. Every test
opens what was written."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import Cancelled, StemDeskError
from stemdesk.io.formats import OutputFormat
from stemdesk.jobs.separate import SeparateOptions
from stemdesk.mixer.mix import Mix
from stemdesk.session import project as projects
from stemdesk.session import tasks
from stemdesk.session.workspace import SongMissing, Workspace

TINY = "tiny-4stem"


def test_the_session_layer_does_not_load_qt():
    # in a process of its own: pytest-qt has loaded Qt into this one
    code = (
        "import sys, stemdesk.session.tasks, stemdesk.session.workspace; "
        "sys.exit(any(name.startswith('PySide6') for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture
def engines():
    return tasks.Engines()


def separate(engines, song, folder, **options):
    return tasks.separate(engines, song, folder, SeparateOptions(model=TINY, **options), threads=1).run()


def test_a_separation_carries_its_null_check_and_writes_what_was_asked_beside_the_stems(engines, song_file, tmp_path):
    song = song_file(seconds=3.0)
    events = []
    made = tasks.separate(
        engines,
        song,
        tmp_path / "stems",
        SeparateOptions(model=TINY),
        tasks.Extras(instrumental=True, sessions=["rpp"]),
        threads=1,
    ).run(events.append)
    null = made.result.null
    certificate = json.loads(made.result.certificate.read_text(encoding="utf-8"))["null"]
    assert null.bit_exact and null.as_dict() == certificate  # the result says what the certificate says
    mix = sf.read(str(song), dtype="int32")[0]
    total = sum(sf.read(str(p), dtype="int32")[0].astype(np.int64) for p in made.result.outputs)
    assert np.array_equal(total, mix)
    instrumental = sf.read(str(made.instrumental), dtype="int32")[0].astype(np.int64)
    vocals = sf.read(str(tmp_path / "stems" / "vocals.wav"), dtype="int32")[0]
    assert made.instrumental == tmp_path / "stems" / "instrumental.wav" and np.array_equal(instrumental + vocals, mix)
    assert "vocals.wav" in made.sessions["rpp"].path.read_text(encoding="utf-8")
    assert events and events[-1]["done"] == events[-1]["total"]


def test_a_cancelled_separation_leaves_nothing(engines, song_file, tmp_path):
    token = CancelToken()
    task = tasks.separate(
        engines,
        song_file(seconds=20.0),
        tmp_path / "stems",
        SeparateOptions(model=TINY, segment_seconds=2.0),
        threads=1,
    )
    with pytest.raises(Cancelled):
        task.run(lambda event: token.cancel() if event.get("done") else None, token)
    assert not (tmp_path / "stems").exists() or not any((tmp_path / "stems").iterdir())


def test_the_workspace_adopts_an_excerpt_and_a_saved_project_brings_it_back(engines, song_file, tmp_path):
    song = song_file(seconds=4.0)
    work = Workspace({"model": TINY, "output_folder": str(tmp_path / "out")})
    info = work.open_song(song)
    assert info.frames == 4 * 44100 and work.stems == {} and not work.changed
    folder = work.stems_folder(TINY, "1.0-3.0s")
    assert folder == tmp_path / "out" / "song" / f"{TINY} 1.0-3.0s"
    made = separate(engines, song, folder, start=1.0, duration=2.0)
    work.adopt(made.result, 1.0)
    assert work.stems_offset == 44100 and work.null is made.result.null and work.changed
    assert work.stems_frames == 2 * 44100 and not work.has_whole_song_stems  # an excerpt
    mix = Mix()
    mix.vocal_db = -6.0
    work.set_mix(mix)
    saved = work.save(tmp_path / "p")
    assert saved == tmp_path / "p.stemdesk" and not work.changed

    again = Workspace({"model": TINY})
    opened = again.open_project(projects.load(saved))
    assert opened.stems_problem is None and opened.info.frames == 4 * 44100
    assert list(again.stems) == list(work.stems) and again.stems_offset == 44100 and again.stems_frames == 2 * 44100
    assert again.mix.vocal_db == -6.0 and again.null.bit_exact


def test_an_ensemble_is_a_model_string_like_any_other_for_tasks_workspaces_and_projects(engines, song_file, tmp_path):
    """The app and the command line pass the same string: the task separates with every member, the folder is
    named after it (the weight mark written so Windows accepts it), the result says what it was made of, and a
    saved project comes back with it."""
    song = song_file(seconds=3.0)
    model = f"{TINY}*2+stemdesk-4stem-lite"
    work = Workspace({"model": model, "output_folder": str(tmp_path / "out")})
    work.open_song(song)
    folder = work.stems_folder(model)
    assert folder == tmp_path / "out" / "song" / f"{TINY} x2+stemdesk-4stem-lite"
    names = []
    made = tasks.separate(
        engines, song, folder, SeparateOptions(model=model), threads=1, on_start=lambda stems: names.extend(stems)
    ).run()
    assert names == ["vocals", "drums", "bass", "other"]
    assert made.result.model == model and made.result.null.bit_exact
    assert made.result.description == f"ensemble of {TINY} (weight 2) and stemdesk-4stem-lite"
    mix = sf.read(str(song), dtype="int32")[0].astype(np.int64)
    assert np.array_equal(sum(sf.read(str(p), dtype="int32")[0].astype(np.int64) for p in made.result.outputs), mix)
    assert engines.get(model, "cpu") is engines.get(model, "cpu")  # loaded once
    work.adopt(made.result)
    again = Workspace({"model": TINY})
    again.open_project(projects.load(work.save(tmp_path / "p")))
    assert again.project.model == model and list(again.stems) == names


def test_a_project_whose_stems_no_longer_fit_opens_without_them_and_says_why(engines, song_file, tmp_path):
    song = song_file(seconds=3.0)
    work = Workspace({"model": TINY})
    work.open_song(song)
    work.adopt(separate(engines, song, tmp_path / "stems").result)
    assert work.has_whole_song_stems
    work.project.view["stems_offset"] = 2 * 44100  # stems now reach past the song's end
    opened = Workspace({}).open_project(work.project)
    assert "longer than the song" in opened.stems_problem


def test_a_project_whose_song_is_gone_is_refused_and_the_workspace_keeps_what_it_had(song_file, tmp_path):
    song = song_file(seconds=1.0)
    work = Workspace({})
    work.open_song(song)
    with pytest.raises(SongMissing, match="not there any more"):
        work.open_project(projects.Project(source=str(tmp_path / "gone.wav")))
    assert work.song == song and work.info.frames == 44100


def test_discarding_removes_the_autosave_and_recovery_finds_an_untitled_one(song_file, tmp_path, monkeypatch):
    work = Workspace({})
    work.open_song(song_file(seconds=1.0))
    assert work.autosave() is None  # nothing changed: nothing to keep
    mix = Mix()
    mix.vocal_db = 3.0
    work.set_mix(mix)
    auto = work.autosave()
    assert projects.load(auto).mix.vocal_db == 3.0
    work.discard()
    assert not auto.exists() and not work.changed

    mix.vocal_db = -3.0
    work.set_mix(mix)
    auto = work.autosave()
    monkeypatch.setattr(projects.os, "getpid", lambda: 999_999)  # as the next start sees a crashed one's
    monkeypatch.setattr(projects, "process_alive", lambda pid: False)
    found = Workspace({}).recoverable()
    assert found == auto
    recovered = Workspace.recovered(found)
    assert recovered.path is None and recovered.mix.vocal_db == -3.0


def test_export_writes_each_choice_named_after_the_song(engines, song_file, tmp_path):
    song = song_file(seconds=2.0)
    stems = separate(engines, song, tmp_path / "stems").result
    choice = tasks.ExportChoice(stems=True, instrumental=True, mix=True, sessions=["rpp"])
    made = tasks.export(stems.outputs[0].parent, tmp_path / "out" / "song", choice, Mix(), song).run()
    assert made.stems == tmp_path / "out" / "song stems"
    assert sorted(p.name for p in made.stems.iterdir()) == sorted(
        [*(p.name for p in stems.outputs), "stemdesk-certificate.json"]
    )
    assert np.array_equal(sf.read(str(made.mix), dtype="int32")[0], sf.read(str(song), dtype="int32")[0])
    assert made.instrumental.name == "song instrumental.wav" and made.sessions["rpp"].path.suffix == ".rpp"
    with pytest.raises(StemDeskError, match="Nothing to export"):
        tasks.export(stems.outputs[0].parent, tmp_path / "x", tasks.ExportChoice(instrumental=False), Mix())


def test_bounce_renders_the_users_mix_in_the_format_of_its_name(engines, song_file, tmp_path):
    song = song_file(seconds=2.0)
    stems = separate(engines, song, tmp_path / "stems").result
    mix = Mix()
    mix.channel("vocals").mute = True
    result = tasks.bounce(stems.outputs[0].parent, mix, tmp_path / "karaoke.flac", mixture=song).run()
    info = sf.info(str(result.path))
    assert result.path.suffix == ".flac" and info.subtype == "PCM_24" and info.frames == 2 * 44100
    vocals = sf.read(str(tmp_path / "stems" / "vocals.wav"))[0]
    heard = sf.read(str(result.path))[0]
    assert np.abs(heard - (sf.read(str(song))[0] - vocals)).max() < 1e-4
    with pytest.raises(StemDeskError, match="xyz"):
        tasks.bounce(stems.outputs[0].parent, mix, tmp_path / "mix.xyz")


def test_a_task_runs_on_the_queue_of_its_device(song_file, tmp_path):
    assert tasks.bounce(tmp_path, Mix(), tmp_path / "m.wav", OutputFormat.parse("wav")).device == "io"
    assert tasks.install_model("htdemucs").device == "network"
    with pytest.raises(StemDeskError, match="Unknown model"):
        tasks.install_model("nope")


def test_a_recheck_names_the_changed_stem_and_finds_where_the_stems_depart(engines, song_file, tmp_path):
    """The certificate hashes every stem: a stem edited on disk is found, the null is measured again on the files as
    they are, and with one changed file the residual is that file's edit (two edits cannot be told apart)."""
    song = song_file(seconds=5.0)
    made = separate(engines, song, tmp_path / "stems", format=OutputFormat.parse("wav", "16"))
    workspace = Workspace(settings={})
    workspace.open_song(song)
    workspace.adopt(made.result)
    before = workspace.files_signature()
    clean = tasks.recheck(tmp_path / "stems", song).run()
    assert not clean.measured and clean.changed == [] and clean.null.bit_exact and clean.culprit is None
    drums, rate = sf.read(str(tmp_path / "stems" / "drums.wav"), dtype="int16")
    drums[int(2.4 * rate), :] = 12000
    sf.write(str(tmp_path / "stems" / "drums.wav"), drums, rate, subtype="PCM_16")
    assert workspace.files_signature() != before
    check = tasks.recheck(tmp_path / "stems", song).run()
    assert check.measured and check.changed == ["drums"] and check.culprit == "drums" and not check.song_changed
    assert not check.null.passed and check.certified.bit_exact
    assert check.null.worst_regions[0]["start_seconds"] == 2.0 and len(check.null.worst_regions) == 1
    assert workspace.apply_check(check, tmp_path / "stems") and workspace.null is check.null
    assert not workspace.apply_check(check, tmp_path / "elsewhere")  # late news of other stems is dropped
    bass, _ = sf.read(str(tmp_path / "stems" / "bass.wav"), dtype="int16")
    sf.write(str(tmp_path / "stems" / "bass.wav"), bass // 2, rate, subtype="PCM_16")
    both = tasks.recheck(tmp_path / "stems", song).run()
    assert both.changed == ["drums", "bass"] and both.culprit is None
