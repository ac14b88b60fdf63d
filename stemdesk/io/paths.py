"""Where StemDesk keeps its files on this machine: the one place that asks platformdirs.

On Linux and macOS every folder below is under "stemdesk". On Windows the configuration and state folders carry
platformdirs' default author level (``stemdesk\\stemdesk``) and the others do not; existing settings, MIDI mappings
and autosaves live there, so the difference is kept rather than moving users' files.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "stemdesk"


def config_dir() -> Path:
    """settings.json and midi-mappings.json."""
    return Path(platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    """Autosaves of untitled projects."""
    return Path(platformdirs.user_state_dir(APP))


def data_dir() -> Path:
    """Installed models and training runs."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """Things that can be made or downloaded again: the demo song, the training corpus."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP, appauthor=False))


def log_file() -> Path:
    """The app's log (rotated): where an unexpected error's details are."""
    return log_dir() / "stemdesk.log"


def models_dir() -> Path:
    """The user's models folder (the model store also searches the shipped models and STEMDESK_MODELS_PATH)."""
    return data_dir() / "models"


def runs_dir() -> Path:
    """Fine-tuning runs."""
    return data_dir() / "runs"


def music_dir() -> Path:
    """The default parent of separated stems: the user's Music folder."""
    return Path(platformdirs.user_music_dir()) / "StemDesk"
