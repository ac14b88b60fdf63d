"""What a split model's recipe does on songs it never heard: leave one song out, every song in turn.

    .venv/bin/python -m lab.split_folds --stemset lab/stemsets/vocals-leadback.json [--steps 900] [--threads 1]
        [--set midside=true --set stft.hop=2048] [--data ../shared/data/cc0-efree-sessions] [--songs S ...]

For each song of the sessions, the recipe `stemdesk train --split` uses (with the ``--set`` changes of the model
it measures) trains from scratch on the other songs for a number of steps fixed before the run, and the weights at
that step are scored on the held-out song, beside the no-harm rule's baselines on the same song. With a stem set's
groups, the recipe trains on them, each child is scored on the seconds where no group sounds, and each group on its
own seconds (the model's and the baselines' group scores are kept beside the children's). Stopping at the
best validation round instead would pick the weights by the song that then scores them (what the shipped
`stemdesk-vocals-leadback`'s own card reports). The history of every validation round is kept too.

Each fold's row goes to ``lab/benchmarks/results/split-folds-<stem set>.json`` as soon as it ends; a fold already
there is not trained again, and a fold killed half-way resumes from its checkpoint (every 2 minutes) in the run
folder, ``~/.cache/stemdesk/split-folds/<stem set>/<song>`` of the lab home it runs in (set HOME and the XDG
folders to a lab home: this trains nothing into the real one).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stemdesk.cli.common import setting as parse_setting
from stemdesk.io.atomic import atomic_write_bytes
from stemdesk.io.paths import cache_dir
from stemdesk.training.scratch import ScratchRequest, plan, train_recipe
from stemdesk.training.split import fold_verdict, gather_split, score_baselines
from stemdesk.training.stemsets import read_stemset

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "lab" / "benchmarks" / "results"


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / max(1, len(values))


def fold(args: argparse.Namespace, song: str, settings: dict) -> dict:
    """Train on every song but ``song`` for ``args.steps`` steps and score the last weights on ``song``."""
    stemset = read_stemset(args.stemset)
    data = gather_split([args.data], stemset, [song])
    train = [data.loaded[name] for name in data.train]
    valid = [data.loaded[name] for name in data.valid]
    request = ScratchRequest(
        data=[args.data],
        name=f"fold-{song}",
        mapping=args.stemset,
        valid=[song],
        settings=settings,
        steps=args.steps,
        minutes=10_000.0,
        threads=args.threads,
        split=stemset.split,
    )
    made = plan(request, stemset.children)
    made.config.checkpoint_minutes = 2.0
    baselines = score_baselines(stemset.children, made.estimator_config["stft"], valid, stemset.group_kinds)
    workdir = cache_dir() / "split-folds" / args.stemset.stem / song
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    trainer, _ = train_recipe(made, train, valid, workdir, None, groups=stemset.group_kinds)
    history = [
        {
            "step": entry["step"],
            "usdr_db": {k: round(v, 3) for k, v in entry["valid_usdr"].items()},
            **(
                {"groups_db": {k: round(v, 3) for k, v in entry["valid_groups"].items()}}
                if "valid_groups" in entry
                else {}
            ),
        }
        for entry in trainer.history
    ]
    last = history[-1]
    if last["step"] != trainer.step:
        raise RuntimeError(f"fold {song}: the last validation was at step {last['step']}, not {trainer.step}")
    return {
        "held_out": song,
        "train_songs": list(data.train),
        "steps": trainer.step,
        "model_db": last["usdr_db"],
        "baselines_db": {
            label: {k: round(v, 3) for k, v in result["median"].items()} for label, result in baselines.items()
        },
        **(
            {
                "model_groups_db": last.get("groups_db", {}),
                "baselines_groups_db": {
                    label: {k: round(v, 3) for k, v in result["groups"]["median"].items()}
                    for label, result in baselines.items()
                },
            }
            if stemset.group_kinds
            else {}
        ),
        "best_round_db": max(history, key=lambda h: mean(h["usdr_db"])),
        "history": history,
        "seconds": round(time.monotonic() - start, 1),
    }


def summarise(rows: dict[str, dict]) -> dict:
    """Per child, the median over folds of the model and of each baseline; the no-harm verdict on the median of
    the folds' mean-over-children (the rule `stemdesk train --split` applies, `split.fold_verdict`)."""
    return fold_verdict([(row["model_db"], row["baselines_db"]) for row in rows.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stemset", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cc0-efree-sessions")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--songs", nargs="*", help="the folds to run (default: every song)")
    args = parser.parse_args()
    settings = dict(parse_setting(item) for item in args.settings)
    out = RESULTS / f"split-folds-{args.stemset.stem}.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    setup = {"stemset": args.stemset.name, "steps": args.steps, "settings": settings, "threads": args.threads}
    if results.get("setup", setup) != setup:
        raise SystemExit(f"{out} holds folds of another setup ({results['setup']}); move it away first")
    results["setup"] = setup
    rows = results.setdefault("folds", {})
    songs = args.songs or sorted(p.name for p in args.data.iterdir() if p.is_dir())
    for song in songs:
        if song in rows:
            print(f"{song}: done already", flush=True)
            continue
        print(f"{song}: training on the other songs for {args.steps} steps", flush=True)
        rows[song] = fold(args, song, settings)
        print(f"{song}: model {rows[song]['model_db']}, baselines {rows[song]['baselines_db']}", flush=True)
        results["summary"] = summarise(rows)
        atomic_write_bytes(out, (json.dumps(results, indent=1) + "\n").encode("utf-8"))
    print(json.dumps(results.get("summary"), indent=1))


if __name__ == "__main__":
    main()
