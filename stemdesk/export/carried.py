"""What of a mix a session format cannot carry, said in words by the exporter that leaves it out."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ..mixer.mix import Mix, parent_of

PARTS = ("pans", "effects", "automation", "send buses", "master level", "key and tempo change")


def left_out(mix: Mix, keys: Sequence[str], carried: Collection[str] = ()) -> str:
    """Those of `PARTS` that ``mix`` uses on the stems ``keys`` (leaves: "vocals/lead") and the format does not
    carry (``carried``), in words: "2 effects, the automation"; "" when nothing is left out."""
    names = {*keys, *(parent_of(k) for k in keys if parent_of(k))}
    channels = [c for n, c in mix.channels.items() if n in names]
    effects = sum(len(c.effects) for c in channels) + len(mix.master)
    used = {
        "pans": ("the pans", any(c.pan for c in channels)),
        "effects": (f"{effects} effect{'s' if effects != 1 else ''}", effects > 0),
        "automation": ("the automation", bool(mix.automation)),
        "send buses": ("the send buses", bool(mix.buses) or any(c.sends for c in channels)),
        "master level": ("the master level", mix.master_gain_db != 0.0),
        "key and tempo change": (f"the key and tempo change ({mix.describe_key_tempo()})", mix.changes_key_or_tempo),
    }
    return ", ".join(words for part, (words, on) in used.items() if on and part not in carried)
