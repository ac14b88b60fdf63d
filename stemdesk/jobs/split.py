"""Splitting stems with split models: ``<song>/vocals.wav`` into ``<song>/vocals/lead.wav``, ``backing.wav``.

A split model (a model whose card says which parent it ``split``s: `stemdesk.training.split`) separates the parent
stem's file as a separation separates a song, so its children null against the parent as written, bit for bit in
16- and 24-bit PCM (the stems writer's rule), and the parents against the song: the whole tree adds up to the song.
The song's certificate gains a ``splits`` block naming each split's model and null, and the null of the tree's
leaves (the children in place of their parents) against the song.

A catalog model that applies to a stem (`stemdesk.io.catalog.Application`: the karaoke model on vocals, the drum
separation on drums) is installed with such a card, its children named by the catalog (``outputs``), so it splits
as any split model does. A clean-up (de-reverb, denoise) is a split whose card names the child holding what it takes
out (``split.removes``): ``--clean`` runs it as a split, so the stem cleaned and what was removed add up to the stem.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.cancel import CancelToken
from ..core.errors import StemDeskError
from ..export import certificate
from ..export.nullcheck import NullResult, null_residual, tree_null
from ..io.audio import AudioInfo
from ..io.ensemble import EnsembleCard, find_card
from ..io.model_store import ModelCard
from ..io.process import trim_heap
from ..io.registry import Registry
from ..io.stems import CERTIFICATE, find_stems
from .separate import Progress, SeparateOptions, SeparateResult, SeparationEngine, excerpt

# The parents a split model may name: a stem of the base model, or "mix" (a split model of a whole song splits any
# stem a user gives it).
ANY_PARENT = "mix"


@dataclass
class SplitResult:
    """One parent split: its model's children, written into ``<song folder>/<parent>/``."""

    parent: str
    result: SeparateResult

    @property
    def folder(self) -> Path:
        return self.result.outputs[0].parent


def split_parent(card: ModelCard | EnsembleCard) -> str | None:
    """The parent a model splits (its card's ``split.parent``), or None for a model that separates songs."""
    return None if isinstance(card, EnsembleCard) else card.split_parent


def removes(card: ModelCard | EnsembleCard) -> str | None:
    """The child a clean-up model writes what it takes out into (its card's ``split.removes``: "reverb", "noise"),
    or None for a model that is not a clean-up."""
    split = None if isinstance(card, EnsembleCard) else card.raw.get("split")
    return str(split["removes"]) if isinstance(split, dict) and split.get("removes") else None


def check_split(parent: str, card: ModelCard | EnsembleCard, stems: Sequence[str], clean: bool = False) -> None:
    """Refuse a split that cannot run: a model that splits nothing, or another parent, or a parent the base model
    does not make; with ``clean`` (``--clean``), a model that is not a clean-up. Raises StemDeskError saying which
    models or stems would do."""
    made = split_parent(card)
    if made is None:
        upgrade = _catalog_upgrade(card)
        if upgrade:
            raise StemDeskError(upgrade, setting="split")
        raise StemDeskError(
            f"{card.id} is not a split model (it separates whole songs); split {parent} with a model whose card "
            "says it splits it (`stemdesk models --all` lists them under Split).",
            setting="split",
        )
    if made not in (parent, ANY_PARENT):
        raise StemDeskError(f"{card.id} splits {made}, not {parent}.", setting="split")
    if clean and removes(card) is None:
        raise StemDeskError(
            f"{card.id} is not a clean-up (it splits {made} into {', '.join(written_stems(card))}): use --split "
            f"{parent}={card.id}, or --clean with a de-reverb or denoise model (`stemdesk models available`).",
            setting="clean",
        )
    if parent not in stems:
        raise StemDeskError(
            f"The base model makes no {parent} stem to split (it makes {', '.join(stems)}).", setting="split"
        )


def _catalog_upgrade(card: ModelCard | EnsembleCard) -> str | None:
    """For a catalog model installed before the catalog said how it applies to a stem: what to run to say it."""
    if isinstance(card, EnsembleCard):
        return None
    from ..io.catalog import find_entry

    made_by = (card.raw.get("catalog") or {}).get("id")
    try:
        entry = find_entry(str(made_by)) if made_by else None
    except StemDeskError:  # a catalog that cannot be read says nothing about this model
        return None
    if entry is None or entry.applies_to is None:
        return None
    return (
        f"{card.id} was installed before StemDesk knew how it splits {entry.applies_to.parent}: run `stemdesk "
        f"models install {entry.id}` once to write it into its card (nothing is downloaded), then split with it."
    )


def written_stems(card: ModelCard | EnsembleCard) -> list[str]:
    """The stems a separation with this model writes (a card that merges sources writes its outputs)."""
    if isinstance(card, EnsembleCard):
        return list(card.sources)
    return list(card.outputs or card.sources)


def check_splits(options: SeparateOptions, registry: Registry | None = None) -> None:
    """Every split of ``options`` checked against the base model's card before anything runs (`check_split`)."""
    if not options.splits:
        return
    stems = written_stems(find_card(options.model, registry))
    for parent, model in options.splits:
        check_split(parent, find_card(model, registry), stems, clean=parent in options.cleans)


def split_options(options: SeparateOptions) -> SeparateOptions:
    """What a split runs with: the song's format and model settings, over the whole parent file (the parent is
    the excerpt already), with the split model's own post-processing only."""
    return replace(options, start=0.0, duration=None, wiener=0, vocal_gate=None, binarise=None, splits=(), cleans=())


def split_file(
    engine: SeparationEngine,
    stem: Path,
    folder: Path,
    options: SeparateOptions,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SeparateResult:
    """Split one stem file into ``folder/<child>.<ext>`` with ``engine``'s split model; the children null against
    the file. Raises what `SeparationEngine.separate_file` raises."""
    return engine.separate_file(stem, folder, split_options(options), progress=progress, cancel=cancel)


def split_tree(
    result: SeparateResult,
    splits: Sequence[tuple[str, str]],
    engine_for: Callable[[str], SeparationEngine],
    options: SeparateOptions,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[SplitResult]:
    """Split the stems a separation wrote (``result``) with each (parent, model) of ``splits``, then record the
    tree in the song's certificate. Every split is checked before any runs. A child folder an earlier separation
    left beside a parent that is not split this time is removed (its parent changed)."""
    by_name = {path.stem: path for path in result.outputs}
    folder = result.outputs[0].parent
    engines = {}
    for parent, model in splits:
        engine = engine_for(model)
        check_split(parent, engine.card, list(by_name), clean=parent in options.cleans)
        engines[parent] = engine
    for name in by_name:
        if name not in engines:
            _remove_children(folder / name)
    done = []
    if engines:
        gc.collect()
        trim_heap()  # the separation's freed tensors go back to the kernel before the split models allocate theirs
    for parent, engine in engines.items():
        if progress is not None:
            progress({"message": f"splitting {parent} with {engine.card.id}"})
        _remove_children(folder / parent)
        made = split_file(engine, by_name[parent], folder / parent, options, progress, cancel)
        done.append(SplitResult(parent, made))
    if done and result.certificate is not None:
        start = excerpt(result.info, options)[0]
        record_tree(folder, done, result.info, start, result.frames, song_null=result.null)
    return done


def split_in_folder(
    engine: SeparationEngine,
    stems_dir: Path,
    parent: str,
    mixture: Path,
    options: SeparateOptions,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SplitResult:
    """Split stem ``parent`` of a folder of stems StemDesk wrote (a song's, made from ``mixture``) into
    ``stems_dir/<parent>/`` with ``engine``'s split model, in the stems' own format, and record the tree in the
    folder's certificate; the other stems' splits stay. Raises StemDeskError before anything is written when the
    folder or the model cannot take it."""
    found = find_stems(stems_dir)
    if parent not in found.names:
        raise StemDeskError(f'"{stems_dir}" has no stem {parent!r}; its stems are {", ".join(found.names)}.')
    if not (Path(stems_dir) / CERTIFICATE).is_file():
        raise StemDeskError(f'"{stems_dir}" has no StemDesk certificate, so its tree cannot be certified.')
    check_split(parent, engine.card, found.names)
    _remove_children(Path(stems_dir) / parent)
    made = split_file(
        engine,
        found.paths[found.names.index(parent)],
        Path(stems_dir) / parent,
        replace(options, format=found.format()),
        progress,
        cancel,
    )
    done = SplitResult(parent, made)
    record_tree(Path(stems_dir), [done], mixture, found.start, found.info.frames, keep=True)
    return done


def _remove_children(folder: Path) -> None:
    """Remove a folder of children StemDesk wrote (it holds a certificate), never anything else."""
    if folder.is_dir() and (folder / CERTIFICATE).is_file():
        shutil.rmtree(folder)


def record_tree(
    folder: Path,
    splits: Sequence[SplitResult],
    mixture: Path | AudioInfo,
    start: int,
    frames: int,
    keep: bool = False,
    song_null: NullResult | None = None,
) -> None:
    """Add the splits and the tree's null (its leaves, `Stems.leaves`, against ``frames`` samples of the ``mixture``
    from ``start``) to the song's certificate in ``folder``; with ``keep``, the splits it names already stay where
    their children still are. The copy inside each WAV stays as it was written: it certifies that stem's level.

    ``song_null``: the null this process found for the song's stems as written. When it and every split's are
    bit-exact, the tree's follows from them (`tree_null`); otherwise the leaves are read back from the folder as
    every reader of the stems does. With it, the stems' hashes this process listed are kept, not computed again."""
    path = Path(folder) / CERTIFICATE
    cert = json.loads(path.read_text(encoding="utf-8"))
    listed = cert.pop("outputs", [])
    outputs = [Path(folder) / o["file"] for o in listed]
    kept = {
        name: entry
        for name, entry in (cert.get("splits") or {}).items()
        if keep and (Path(folder) / name / CERTIFICATE).is_file()
    }
    made = {
        s.parent: {
            "model": json.loads(s.result.certificate.read_text(encoding="utf-8")).get("model")
            if s.result.certificate is not None
            else s.result.model,
            "folder": s.parent,
            "children": [p.name for p in s.result.outputs],
            "null": s.result.null.as_dict() if s.result.null is not None else None,
        }
        for s in splits
    }
    cert["splits"] = {**kept, **made}
    settings = cert.setdefault("settings", {})
    earlier = {name: model for name, model in (settings.get("splits") or {}).items() if name in kept}
    settings["splits"] = {**earlier, **{s.parent: s.result.model for s in splits}}
    keys, paths = zip(*find_stems(folder).leaves())
    composed, known = None, None
    if song_null is not None and not keep:  # this process wrote the song's stems: their checks and hashes stand
        composed = tree_null(song_null, {s.parent: s.result.null for s in splits if s.result.null}, keys)
        known = {o["file"]: o["sha256"] for o in listed}
    tree = composed or null_residual(mixture, list(paths), start, frames, names=list(keys))
    cert["tree_null"] = tree.as_dict()
    certificate.write_beside(Path(folder), cert, outputs, known=known)
