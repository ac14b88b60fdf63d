"""Names no stem may have: a mix's strips and controls are named "<stem>/gain_db", "<stem>/fx/0/mix",
"vocals/lead/mute" (`stemdesk.mixer.mix`), and "master" and "bus" are its own. Facts only, so that the command line's
answers that load nothing heavy may read them."""

from __future__ import annotations

# what follows a strip's name in a control's name ("vocals/gain_db", "vocals/lead/fx/0/mix")
STRIP_CONTROLS = ("gain_db", "pan", "mute", "solo", "send", "fx")
RESERVED_NAMES = frozenset({"master", "bus", *STRIP_CONTROLS})
