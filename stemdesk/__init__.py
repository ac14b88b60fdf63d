"""StemDesk: split finished songs into stems that null-sum back to the original.

The Python API (docs/python-api.md)::

    import stemdesk
    result = stemdesk.separate("song.flac", out="stems")   # stems/song/{vocals,drums,bass,other}.wav
    print(result.null.verdict, result.stems["vocals"])

`separate`, `separate_array`, `nullcheck`, `remix`, `export_sessions`, `midi`, `models` and the errors are loaded on
first use (from `stemdesk.api` and `stemdesk.core.errors`), so ``import stemdesk`` stays light: it does not import
torch.
"""

from .core.version import __version__

_API = (
    "separate",
    "separate_array",
    "nullcheck",
    "remix",
    "export_sessions",
    "midi",
    "make_karaoke",
    "models",
    "Separated",
)
_ERRORS = (
    "StemDeskError",
    "AudioError",
    "ModelError",
    "MixError",
    "DeviceUnavailable",
    "OutOfMemory",
    "Cancelled",
    "StemsExist",
)
__all__ = ["__version__", *_API, *_ERRORS]


def __getattr__(name: str):
    # By name, when first asked for: every module that reads __version__ imports this one, and none of them uses
    # the API (import-linter would otherwise see them all importing stemdesk.api through it).
    from importlib import import_module

    if name in _API:
        return getattr(import_module("stemdesk.api"), name)
    if name in _ERRORS:
        return getattr(import_module("stemdesk.core.errors"), name)
    raise AttributeError(f"module 'stemdesk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
