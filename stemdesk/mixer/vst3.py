"""VST3 inserts through pedalboard, scanned in a child process first so a crashing plugin cannot take StemDesk down.

python -m stemdesk.mixer.vst3 PLUGIN.vst3      prints the scan (name, parameters with units and ranges) as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pedalboard

from ..core.errors import MixError

SCAN_TIMEOUT = 60.0
_scanned: dict[tuple[str, int], dict] = {}


def _describe(plugin) -> dict:
    params = {}
    for name, param in plugin.parameters.items():
        low, high, step = param.range
        params[name] = {
            "label": param.name,
            "unit": getattr(param, "units", None) or getattr(param, "label", ""),
            "min": low,
            "max": high,
            "step": step,
            "value": float(getattr(plugin, name))
            if isinstance(getattr(plugin, name), (int, float))
            else str(getattr(plugin, name)),
        }
    return {"name": plugin.name, "parameters": params, "latency": getattr(plugin, "reported_latency_samples", 0)}


def scan(path: str | os.PathLike, timeout: float = SCAN_TIMEOUT) -> dict:
    """Load the plugin in a child process and return its description. Cached per path and modification time."""
    plugin = Path(path)
    if not plugin.exists():
        raise MixError(f'VST3 plugin "{plugin}" does not exist. Check the path, or remove the effect from the mix.')
    key = (str(plugin.resolve()), plugin.stat().st_mtime_ns)
    if key in _scanned:
        return _scanned[key]
    try:
        # in the frozen app there is no "python -m": its launcher runs the scan for --vst3-scan
        command = (
            [sys.executable, "--vst3-scan", str(plugin)]
            if getattr(sys, "frozen", False)
            else [sys.executable, "-m", "stemdesk.mixer.vst3", str(plugin)]
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MixError(
            f'VST3 plugin "{plugin.name}" did not finish loading within {timeout:g} s; it was not loaded.'
        ) from None
    if done.returncode != 0:
        if done.returncode < 0:
            what = f"crashed while loading (signal {-done.returncode})"
        else:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            what = f"failed to load: {lines[-1] if lines else f'exit code {done.returncode}'}"
        raise MixError(
            f'VST3 plugin "{plugin.name}" {what}; it was not loaded. Remove it from the mix or update the plugin.'
        )
    try:
        description = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise MixError(f'VST3 plugin "{plugin.name}" printed an unreadable scan; it was not loaded.') from None
    _scanned[key] = description
    return description


def load_vst3(path: str | os.PathLike, params: dict[str, Any]):
    """A loaded VST3 plugin with its parameters set by name (after a scan in a child process)."""
    description = scan(path)
    known = description["parameters"]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise MixError(
            f'VST3 plugin "{description["name"]}" has no parameter {unknown[0]!r}; it has {", ".join(known) or "none"}.'
        )
    for name, value in params.items():
        spec = known[name]
        if isinstance(value, (int, float)) and not spec["min"] <= value <= spec["max"]:
            unit = f" {spec['unit']}" if spec["unit"] else ""
            raise MixError(
                f"{description['name']}.{name} = {value:g} is out of range; use {spec['min']:g} to "
                f"{spec['max']:g}{unit}."
            )
    try:
        plugin = pedalboard.load_plugin(str(path))
        for name, value in params.items():
            setattr(plugin, name, value)
    except (ImportError, RuntimeError, ValueError) as error:
        raise MixError(f'VST3 plugin "{Path(path).name}" could not be set up: {error}.') from None
    return plugin


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    plugin = pedalboard.load_plugin(argv[0])
    print(json.dumps(_describe(plugin)))
    sys.stdout.flush()
    os._exit(0)  # some plugins crash in their destructors; the scan is already printed


if __name__ == "__main__":
    sys.exit(main())
