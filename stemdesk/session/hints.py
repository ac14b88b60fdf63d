"""What StemDesk tells the user once, decided here without Qt for both front ends; each words its own action.

There is one such notice: after a separation with the default model, that HTDemucs v4 separates better and can be
installed (what it gains, what it costs, its licence). The command line says it once; the app offers it with one
click until the user answers. An answer in either front end ("declined", "accepted") ends it everywhere. Where it
was shown or answered is kept in the notices file of `stemdesk.io.settings`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import ModelError
from ..io import settings as settings_store
from ..io.installable import HTDEMUCS_DISK_MB, HTDEMUCS_SECONDS_FLOAT32, HTDEMUCS_SPEED, INSTALLABLE
from ..io.model_store import DEFAULT_MODEL, find_model
from ..io.registry import Registry

log = logging.getLogger("stemdesk.hints")

NOTICE = "htdemucs"  # the notice's name in the notices file
MODEL = "htdemucs"  # the model it offers (an id of INSTALLABLE)
ANSWERS = ("declined", "accepted")  # what ends the notice in every front end

# HTDemucs's time for a 3-minute stereo song on one CPU thread, file in to four stems out: its card's (partly in
# bfloat16), and in float32 (see `stemdesk.io.installable`, which keeps every fact of it once)
HTDEMUCS_SECONDS_3_MINUTES = (HTDEMUCS_SPEED["seconds_1_thread"], HTDEMUCS_SECONDS_FLOAT32)
STEMS = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class Offer:
    """A suggestion to install a model: ``text`` says what it gains, what it costs and its licence, and names no
    front end's controls; each front end adds how it installs ``model``."""

    model: str
    title: str
    text: str


def quality_line(default_card: Mapping[str, Any]) -> str:
    """What HTDemucs gains, from the default card's measured teacher gap (benchmarks/quality.py): the median uSDR of
    each stem on the validation songs, HTDemucs's against the default's."""
    gap = (default_card.get("metrics") or {}).get("teacher_gap") or {}
    stems = gap.get("stems") or {}
    shown = [s for s in STEMS if isinstance(stems.get(s), dict) and {"student", "teacher"} <= set(stems[s])]
    if gap.get("teacher") != MODEL or not shown:
        return f"{INSTALLABLE[MODEL].title} separates four stems more cleanly than the default, {DEFAULT_MODEL}."
    songs = stems[shown[0]].get("songs")
    pairs = ", ".join(f"{s} {stems[s]['teacher']:.1f} against {stems[s]['student']:.1f}" for s in shown)
    on = f"on {songs} validation songs" if songs else "on the validation songs"
    return (
        f"{INSTALLABLE[MODEL].title} separates better than the default, {DEFAULT_MODEL}: {on} its median uSDR "
        f"is {pairs} dB (higher is better)."
    )


def cost_line(default_card: Mapping[str, Any]) -> str:
    """What installing and using HTDemucs costs: the download, the disk, the time against the default's."""
    item = INSTALLABLE[MODEL]
    low, high = (round(seconds / 60) for seconds in HTDEMUCS_SECONDS_3_MINUTES)
    speed = (default_card.get("metrics") or {}).get("speed") or {}
    default = speed.get("seconds") if speed.get("threads") == 1 else None
    against = f", against {default:.0f} s with the default" if isinstance(default, (int, float)) else ""
    return (
        f"Installing it downloads {item.download}, {HTDEMUCS_DISK_MB} MB on disk. It is slower: a 3-minute song "
        f"takes {low} to {high} minutes on one CPU thread{against}."
    )


def offer_text(default_card: Mapping[str, Any]) -> str:
    """The offer's three lines: quality, cost, licence."""
    return "\n".join(
        [
            quality_line(default_card),
            cost_line(default_card),
            f"Its weights are for {INSTALLABLE[MODEL].licence}.",
        ]
    )


def htdemucs_offer(
    model: str,
    installed: Collection[str],
    notices: Mapping[str, Mapping[str, str]],
    front_end: str,
    default_card: Mapping[str, Any] | None = None,
) -> Offer | None:
    """The offer to show after a separation with ``model`` in ``front_end`` ("cli", "app"), or None: only after the
    default model, only while HTDemucs is not ``installed``, never once ``front_end`` has shown it (the command line)
    or been answered (the app), and never after the user answered it in either front end."""
    if model != DEFAULT_MODEL or MODEL in installed:
        return None
    record = notices.get(NOTICE) or {}
    if front_end in record or any(what in ANSWERS for what in record.values()):
        return None
    return Offer(MODEL, INSTALLABLE[MODEL].title, offer_text(default_card or {}))


def offer_after_separation(model: str, front_end: str, registry: Registry | None = None) -> Offer | None:
    """`htdemucs_offer` for what is on disk now: the models installed and the notices file."""
    if model != DEFAULT_MODEL:  # the common case, without reading anything
        return None
    try:
        find_model(MODEL, registry)
        return None  # installed
    except ModelError:
        pass
    try:
        default_card = find_model(DEFAULT_MODEL, registry).raw
    except ModelError:
        default_card = {}
    return htdemucs_offer(model, (), settings_store.load_notices(), front_end, default_card)


def record(front_end: str, what: str) -> bool:
    """Note that the offer was ``what`` ("shown", "declined", "accepted") in ``front_end``. A notices file that
    cannot be written is logged, not raised: the separation it follows succeeded."""
    try:
        settings_store.record_notice(NOTICE, front_end, what)
    except OSError as error:
        log.warning("could not record the %s notice (%s)", NOTICE, error)
        return False
    return True
