"""The models users get: a wheel (pyproject.toml's [tool.setuptools.data-files]) and the desktop bundle
(installer/stemdesk.spec, evaluated here dry, with PyInstaller's calls stubbed out) ship the same files, those of
every user-facing model in models/ and of none of the research or test models."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def wheel_models() -> dict[str, set[str]]:
    """Each shipped model's folder in a wheel (share/stemdesk/models/ID) → its files, repository paths."""
    table = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["data-files"]
    prefix = "share/stemdesk/models/"
    return {target.removeprefix(prefix): set(files) for target, files in table.items() if target.startswith(prefix)}


def bundle_datas(monkeypatch) -> list[tuple[str, str]]:
    """The (source, folder in the bundle) pairs the spec gives PyInstaller, with nothing built."""
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_data_files = hooks.collect_dynamic_libs = hooks.copy_metadata = lambda *a, **k: []
    for name in ("PyInstaller", "PyInstaller.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    captured: dict = {}

    def analysis(scripts, **options):
        captured.update(options)
        return types.SimpleNamespace(binaries=[], datas=list(options["datas"]), pure=[], scripts=[])

    def stub(*args, **kwargs):
        return None

    spec = REPO / "installer" / "stemdesk.spec"
    namespace = {"SPECPATH": str(spec.parent), "Analysis": analysis, "PYZ": stub, "EXE": stub, "COLLECT": stub,
                 "BUNDLE": stub, "__name__": "stemdesk_spec"}  # fmt: skip
    exec(compile(spec.read_text(encoding="utf-8"), str(spec), "exec"), namespace)
    return captured["datas"]


def test_the_wheel_and_the_bundle_ship_the_same_model_files(monkeypatch):
    wheel = {(str(REPO / file), f"models/{model}") for model, files in wheel_models().items() for file in files}
    bundle = {(source, target) for source, target in bundle_datas(monkeypatch) if target.startswith("models")}
    assert bundle == wheel
    assert all(Path(source).is_file() for source, _ in bundle)


def test_every_user_facing_model_ships_whole_and_no_research_or_test_model_does():
    shipped = wheel_models()
    for folder in sorted(p for p in (REPO / "models").iterdir() if (p / "card.json").is_file()):
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        if card.get("purpose") in ("research", "tests"):
            assert folder.name not in shipped, folder.name
            continue
        files = {str(p.relative_to(REPO)) for p in folder.iterdir() if p.is_file()}
        assert shipped.get(folder.name) == files, folder.name  # every file of it, so it loads where installed
        if card.get("weights_from"):  # a variant borrows its base's weights: the base ships too
            assert card["weights_from"] in shipped, folder.name


def test_the_lead_backing_split_says_what_it_does_on_songs_it_never_heard():
    """Its card has leave-one-song-out folds over the five CC0 sessions (lab/split_folds.py): each fold's model and
    equal split on the song left out, the medians those give, and a caution wherever it loses, which its README and
    every place that offers it show (the short form in the app's split menu)."""
    import statistics

    card = json.loads((REPO / "models" / "stemdesk-vocals-leadback" / "card.json").read_text(encoding="utf-8"))
    unheard = card["unheard"]
    folds = unheard["folds"]
    assert len(folds) == 5 and "900 steps" in unheard["method"]
    for child in ("lead", "backing"):
        assert unheard["median"]["model"][child] == round(
            statistics.median(f["model"][child] for f in folds.values()), 2
        )
    mean = lambda scores: sum(scores.values()) / len(scores)  # noqa: E731
    lost = [song for song, f in folds.items() if mean(f["model"]) <= mean(f["equal parts"])]
    assert bool(lost) == ("caution" in unheard)
    assert all(song in unheard["caution"] for song in lost) and "unheard songs" in unheard["short"]
    readme = (REPO / "models" / "stemdesk-vocals-leadback" / "README.md").read_text(encoding="utf-8")
    assert "## On songs it never heard" in readme and unheard["caution"] in readme
