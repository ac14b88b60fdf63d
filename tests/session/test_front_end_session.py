"""The decisions the app's window used to make itself, now in the session layer without Qt: job bookkeeping, when the
stems' files are checked again and what a check means, which autosave to offer after a crash, the recent files, and
the MIDI link between knobs and the workspace's one mix. Each announces what changed; these tests listen."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import soundfile as sf

from stemdesk.io import settings as settings_store
from stemdesk.jobs.separate import SeparateOptions
from stemdesk.mixer.midi import MidiMap
from stemdesk.mixer.mix import Mix
from stemdesk.session import project as projects
from stemdesk.session import recovery, tasks
from stemdesk.session.events import Announcement
from stemdesk.session.jobs import JobBook
from stemdesk.session.midi_map import MidiLink
from stemdesk.session.recent import MAX_RECENT, RecentFiles
from stemdesk.session.watch import StemsWatch
from stemdesk.session.workspace import Workspace

TINY = "tiny-4stem"


def test_the_front_end_decisions_load_no_qt():
    # in a process of its own: pytest-qt may have loaded Qt into this one
    code = (
        "import sys, stemdesk.session.jobs, stemdesk.session.watch, stemdesk.session.recovery, "
        "stemdesk.session.recent, stemdesk.session.midi_map, stemdesk.session.events; "
        "sys.exit(any(name.startswith('PySide6') for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_an_announcement_calls_its_listeners_in_order_and_forgets_one_disconnected():
    heard = []
    changed = Announcement()
    first = changed.connect(lambda what: heard.append(("first", what)))
    changed.connect(lambda what: heard.append(("second", what)))
    changed.emit(1)
    changed.disconnect(first)
    changed.emit(2)
    assert heard == [("first", 1), ("second", 1), ("second", 2)] and len(changed) == 1


def job(id_, result=None):
    return SimpleNamespace(id=id_, result=result)


def test_the_job_book_runs_what_was_asked_when_a_job_ends_and_counts_the_running_ones():
    book, heard = JobBook(), []
    book.failed.connect(lambda j: heard.append(("failed", j.id)))
    book.ended.connect(lambda j, token: heard.append(("ended", j.id, token)))
    book.track(1, "separate", on_done=lambda r: heard.append(("done", r)), on_end=lambda j: heard.append(("end", 1)))
    book.track(2, "separate", on_done=lambda r: heard.append(("done?", r)), on_end=lambda j: heard.append(("end", 2)))
    book.track(3, "check-stems", token="signal")
    assert book.running("separate") == 2 and book.running("check-stems") == 1 and book.running("train") == 0
    assert not book.event(job(1), "progress") and heard == []
    assert book.event(job(1, "stems"), "done")
    assert heard == [("done", "stems"), ("end", 1), ("ended", 1, None)] and book.running("separate") == 1
    heard.clear()
    assert book.event(job(2), "failed")  # on_end runs, on_done does not; the failure is announced before the end
    assert heard == [("end", 2), ("failed", 2), ("ended", 2, None)] and book.running("separate") == 0
    heard.clear()
    assert book.event(job(3), "cancelled") and heard == [("ended", 3, "signal")]
    heard.clear()
    assert not book.event(job(9), "failed")  # a job the book never tracked is still announced
    assert heard == [("failed", 9), ("ended", 9, None)]


def test_the_job_book_hands_a_jobs_progress_to_it_alone_and_none_after_it_ended():
    book, heard = JobBook(), []
    book.track(1, "train", on_progress=lambda payload: heard.append((1, payload)))
    book.track(2, "separate")  # no on_progress: its reports go nowhere
    assert not book.event(job(1), "progress", {"step": 3}) and not book.event(job(2), "progress", {"step": 4})
    assert not book.event(job(1), "started", {"ignored": True})
    assert book.event(job(1), "done")
    assert not book.event(job(1), "progress", {"step": 5})  # a late report of an ended job
    assert heard == [(1, {"step": 3})]


def test_the_job_book_cancels_the_running_jobs_of_a_kind_and_still_ends_them_through_their_events():
    book, asked, heard = JobBook(), [], []
    book.ended.connect(lambda j, token: heard.append(("ended", j.id)))
    book.track(
        1, "train", on_end=lambda j: heard.append(("end", j.id, book.running("train"))), cancel=lambda: asked.append(1)
    )
    book.track(2, "separate", cancel=lambda: asked.append(2))
    book.track(3, "check-stems")  # a job tracked without a way to stop it is not counted as asked
    assert book.cancel("train") == 1 and asked == [1] and book.running("train") == 1  # running until it ends
    assert book.cancel("check-stems") == 0 and book.cancel("import") == 0 and asked == [1]
    assert book.event(job(1), "cancelled")
    assert heard == [("end", 1, 0), ("ended", 1)] and book.running("train") == 0  # on_end sees it no longer runs
    assert book.cancel("train") == 0 and asked == [1]


@pytest.fixture
def separated(song_file, tmp_path):
    """A workspace with the whole song's stems from the tiny model, as the app has them after a separation."""
    song = song_file(seconds=3.0)
    work = Workspace({"model": TINY, "output_folder": str(tmp_path / "out")})
    work.open_song(song)
    folder = work.stems_folder(TINY)
    made = tasks.separate(tasks.Engines(), song, folder, SeparateOptions(model=TINY), threads=1).run()
    work.adopt(made.result)
    return work


def rewrite(path, gain: float) -> None:
    """Another program edits a stem: other samples, and a later modification time."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    sf.write(str(path), data * gain, rate, subtype="PCM_16")
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))


def test_a_stem_changed_on_disk_is_checked_again_and_its_check_says_reload(separated):
    work = separated
    watch, heard = StemsWatch(work), []
    work.stems_changed.connect(lambda why: heard.append(("reload", work.check.changed)) if why == "checked" else None)
    watch.checked.connect(lambda check: heard.append(("checked", check.measured)))
    watch.departed.connect(lambda names: heard.append(("departed", names)))
    watch.new_stems(seen=True)  # the files the separation just wrote
    assert not watch.changed_on_disk() and not watch.due(checking=False, separating=False)

    rewrite(work.stems["vocals"], 0.5)
    assert watch.changed_on_disk()
    assert not watch.due(checking=True, separating=False)  # a check runs already
    assert not watch.due(checking=False, separating=True)  # a separation is writing them
    assert watch.due(checking=False, separating=False)

    checking = watch.start()
    assert checking.folder == work.stems_dir and not watch.due(checking=False, separating=False)  # seen now
    check = tasks.recheck(checking.folder, work.song).run()
    assert watch.finished(checking, check)
    assert heard == [("reload", ["vocals"]), ("checked", True), ("departed", ["vocals"])]
    assert work.check is check and work.null is check.null and not check.null.passed


def test_an_untouched_folder_checks_without_reloading_and_a_late_check_is_dropped(separated):
    work = separated
    watch, heard = StemsWatch(work), []
    work.stems_changed.connect(lambda why: heard.append("reload"))
    for name in ("checked", "departed"):
        getattr(watch, name).connect(lambda *what, name=name: heard.append(name))
    checking = watch.start()
    check = tasks.recheck(checking.folder, work.song).run()
    assert watch.finished(checking, check) and heard == ["checked"]  # the certificate's null: nothing to take again
    assert not check.measured and check.null.passed

    heard.clear()
    late = watch.start()
    watch.new_stems()  # other stems (or another song) came meanwhile
    assert not watch.finished(late, check) and heard == []


def test_without_stems_nothing_is_watched(song_file, tmp_path):
    work = Workspace({"model": TINY, "output_folder": str(tmp_path)})
    work.open_song(song_file(seconds=1.0))
    watch = StemsWatch(work)
    assert watch.changed_on_disk()  # never looked at...
    assert not watch.due(checking=False, separating=False)  # ...but there are no stems to check
    assert watch.start() is None


def write_autosave(project: projects.Project, mtime: float):
    path = projects.autosave(project)
    os.utime(path, (mtime, mtime))
    return path


def test_recovery_offers_the_newest_autosave_and_no_removes_it(song_file, tmp_path):
    song = song_file(seconds=1.0)
    saved_path = tmp_path / "p.stemdesk"
    project = projects.Project(source=str(song), model=TINY, path=saved_path)
    projects.save(project, saved_path)
    os.utime(saved_path, (1_000_000, 1_000_000))
    work = Workspace({"model": TINY})
    work.project.path = saved_path
    assert recovery.offer(work) is None  # no autosave yet

    project.mix.vocal_db = -3.0
    auto = write_autosave(project, 2_000_000)  # newer than the saved project: worth offering
    offer = recovery.offer(work)
    assert offer.autosave == auto and offer.project.path == saved_path and offer.project.mix.vocal_db == -3.0
    assert offer.song == song.name and f"\u201c{song.name}\u201d" in offer.question and "Recover it?" in offer.question
    recovery.declined(offer)
    assert not auto.exists() and recovery.offer(work) is None

    write_autosave(project, 500_000)  # older than the saved project: what was saved is newer, nothing to offer
    assert recovery.offer(work) is None


def test_recent_files_come_first_once_at_most_ten_and_are_saved_in_the_settings(tmp_path):
    values = dict(settings_store.DEFAULTS)
    saved = []
    recent = RecentFiles(values, save=lambda v: saved.append(settings_store.save(v, tmp_path / "settings.json")))
    heard = []
    recent.changed.connect(heard.append)
    assert recent.entries == []
    for n in range(12):
        recent.add(tmp_path / f"song{n}.wav")
    recent.add(tmp_path / "song5.wav")
    expected = [str(tmp_path / f"song{n}.wav") for n in (5, 11, 10, 9, 8, 7, 6, 4, 3, 2)]
    assert recent.entries == expected and len(expected) == MAX_RECENT and heard[-1] == expected
    assert settings_store.load(tmp_path / "settings.json")["recent_files"] == expected
    assert RecentFiles.is_project("x/p.stemdesk") and not RecentFiles.is_project("x/song.wav")


def test_the_settings_schema_checks_the_recent_files():
    setting = settings_store.BY_KEY["recent_files"]
    assert setting.check(["a.wav", "b.stemdesk"]) == ["a.wav", "b.stemdesk"]
    for bad in ("a.wav", [1], ["a\0b"], [""], ["x"] * (MAX_RECENT + 1)):
        with pytest.raises(ValueError):
            setting.check(bad)


def test_a_damaged_recent_list_falls_back_to_none_and_the_rest_of_the_settings_stay(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"recent_files": "not a list", "threads": 2}), encoding="utf-8")
    values = settings_store.load(path)
    assert values["threads"] == 2 and list(values["recent_files"]) == []


def test_the_workspace_owns_the_mix_and_announces_edits_and_loops():
    work = Workspace({"model": TINY})
    mixes, loops = [], []
    work.mix_changed.connect(mixes.append)
    work.loop_changed.connect(loops.append)
    mix = Mix()
    mix.vocal_db = -4.0
    own = work.set_mix(mix)
    mix.vocal_db = 0.0  # the caller's copy is its own to edit
    assert mixes == [own] and own is work.mix and work.mix.vocal_db == -4.0 and work.changed
    work.set_loop([1.0, 2.5])
    work.set_loop(None)
    assert loops == [(1.0, 2.5), None] and work.loop is None
    project = work.project
    work.set_fingerprint(project, "ab" * 32)
    assert work.project.source_sha256 == "ab" * 32


def test_the_workspace_announces_the_song_the_stems_and_unsaved_work_and_the_watch_follows(song_file, tmp_path):
    """What many views show is announced once by the workspace: opening says the song and then the stems (none, or
    the project's), a separation's stems are adopted, saving and opening say there is no unsaved work, a recovered
    project says there is; the watch counts each new set of stems itself, so a check of earlier ones comes too late."""
    song = song_file(seconds=3.0)
    work = Workspace({"model": TINY, "output_folder": str(tmp_path / "out")})
    watch, heard = StemsWatch(work), []
    work.song_opened.connect(lambda info: heard.append(("song", info.frames, dict(work.stems))))
    work.stems_changed.connect(lambda why: heard.append(("stems", why, sorted(work.stems))))
    work.dirty.connect(lambda changed: heard.append(("dirty", changed, work.name)))
    work.open_song(song)
    assert heard == [("song", 3 * 44100, {}), ("stems", "opened", []), ("dirty", False, song.name)]
    assert watch.generation == 1

    heard.clear()
    made = tasks.separate(tasks.Engines(), song, work.stems_folder(TINY), SeparateOptions(model=TINY), threads=1).run()
    work.adopt(made.result)
    names = sorted(path.stem for path in made.result.outputs)
    assert heard == [("stems", "adopted", names), ("dirty", True, song.name)]
    assert watch.generation == 2 and not watch.changed_on_disk()  # the files just written count as seen
    heard.clear()
    saved = work.save(tmp_path / "p.stemdesk")
    assert heard == [("dirty", False, "p.stemdesk")]

    work.open_song(song_file("other.wav", seconds=1.0))
    heard.clear()
    assert not work.adopt(made.result) and work.stems == {} and heard == []  # a separation of the song before
    work.open_project(projects.load(saved), recovered=True)
    assert heard == [("song", 3 * 44100, dict(work.stems)), ("stems", "opened", names), ("dirty", True, "p.stemdesk")]
    assert watch.generation == 4


class Knob(SimpleNamespace):
    type = "control_change"


def test_midi_learn_binds_a_knob_and_its_moves_reach_the_mix_through_post(tmp_path, monkeypatch):
    monkeypatch.setattr("stemdesk.mixer.midi.mappings_path", lambda: tmp_path / "midi.json")
    work = Workspace({"model": TINY})
    posted = []  # what rtmidi's thread hands to the front end's thread: nothing runs until it is drained
    link = MidiLink(work, lambda fn, *args: posted.append((fn, args)))
    moved, bound = [], []
    link.moved.connect(lambda before, after: moved.append((before, after)))
    link.bound.connect(bound.append)
    link.controller = link.controller_for(MidiMap.load(), clock=lambda: None)
    link.controller.recording = False

    link.learn()
    link.controller.handle(Knob(channel=0, control=21, value=30))
    binding = link.touched("vocals/gain_db")
    assert binding is not None and (binding.channel, binding.cc, binding.control) == (0, 21, "vocals/gain_db")
    assert bound == [binding] and MidiMap.load().control_for(0, 21) == "vocals/gain_db"  # saved for next time

    assert link.controller.handle(Knob(channel=0, control=21, value=0)) == "vocals/gain_db"
    assert moved == [] and work.mix.vocal_db == 0.0  # not on the MIDI thread
    for fn, args in posted:
        fn(*args)
    ((before, after),) = moved
    low, _ = work.mix.control_range("vocals/gain_db")
    assert before.vocal_db == 0.0 and after.vocal_db == low
    work.set_mix(after)  # the front end applies it (as an undoable edit)

    mix = Mix()
    mix.channel("drums").gain_db = -9.0
    work.set_mix(mix)  # an edit elsewhere (a fader, undo): the controller's next move starts from the workspace's
    posted.clear()
    link.controller.handle(Knob(channel=0, control=21, value=127))
    for fn, args in posted:
        fn(*args)
    after = moved[-1][1]
    assert after.channels["drums"].gain_db == -9.0 and after is not work.mix
    assert link.controller.mix is None  # it keeps no copy of the mix to follow the workspace's
