"""How long the command line takes to answer what needs no model: `--help`, `--version`, `models`.

    .venv/bin/python benchmarks/startup.py [--repeats 7]

Each command runs as a whole process, as a user starts it, with a home and temporary folder of its own. Baselines
measured in the same run: a bare Python start (`python -c pass`, the floor) and `python -c "import torch"` (what
every command paid before torch was imported only where a model runs). The goal is 0.3 s or less for each command;
the report gives the median and worst of the repeats, the ratio to the floor, and whether torch was imported.
Results: benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
GOAL_SECONDS = 0.3
# Runs the command line in-process, then says whether torch was imported along the way.
PROBE = (
    "import sys; from stemdesk.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('torch imported: ' + str('torch' in sys.modules), file=sys.stderr)"
)
COMMANDS = {"--help": ["--help"], "--version": ["--version"], "models": ["models"]}


def timed(argv: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    stemdesk = ROOT / ".venv" / "bin" / "stemdesk"
    with tempfile.TemporaryDirectory(prefix="stemdesk-startup-") as work:
        env = {**os.environ, "HOME": work, "XDG_CONFIG_HOME": f"{work}/config", "XDG_DATA_HOME": f"{work}/data"}
        env.update(XDG_CACHE_HOME=f"{work}/cache", XDG_STATE_HOME=f"{work}/state", TMPDIR=work)
        runs = {
            "python -c pass (floor)": [str(PYTHON), "-c", "pass"],
            "python -c 'import torch'": [str(PYTHON), "-c", "import torch"],
            **{f"stemdesk {name}": [str(stemdesk), *argv] for name, argv in COMMANDS.items()},
        }
        timed(runs["stemdesk --help"], env)  # warm the file cache once
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):  # interleaved, so a busy moment of the machine hits every command alike
            for name, argv in runs.items():
                seconds[name].append(timed(argv, env)[0])
        torch_in = {
            name: "torch imported: True" in timed([str(PYTHON), "-c", PROBE, *argv], env)[1]
            for name, argv in COMMANDS.items()
        }
    floor = statistics.median(seconds["python -c pass (floor)"])
    rows = []
    print(f"{'command':28} {'median s':>9} {'worst s':>8} {'x floor':>8}  torch  goal {GOAL_SECONDS} s")
    for name, values in seconds.items():
        median, worst = statistics.median(values), max(values)
        command = name.removeprefix("stemdesk ")
        imported = torch_in.get(command)
        met = "" if command not in COMMANDS else ("met" if median <= GOAL_SECONDS else "MISSED")
        torch_column = "" if imported is None else ("yes" if imported else "no")
        print(f"{name:28} {median:9.3f} {worst:8.3f} {median / floor:8.1f}  {torch_column:5}  {met}")
        rows.append(dict(command=name, median=median, worst=worst, ratio=median / floor, torch=imported))
    out = ROOT / "benchmarks" / "results" / "startup.json"
    out.parent.mkdir(exist_ok=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    out.write_text(json.dumps({"cpu": cpu, "repeats": args.repeats, "rows": rows}, indent=1) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    sys.exit(0 if all(r["median"] <= GOAL_SECONDS for r in rows if r["command"].startswith("stemdesk")) else 1)


if __name__ == "__main__":
    main()
