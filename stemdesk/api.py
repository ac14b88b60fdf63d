"""StemDesk from Python, for DAW scripts and batch jobs: separate songs, check that stems null, remix them, write DAW
sessions around them, list the models. ``import stemdesk`` and call ``stemdesk.separate(...)``; docs/python-api.md
has runnable examples.

Each function builds the same task the command line runs (`stemdesk.session.tasks`), so a file written from Python
is the file ``stemdesk separate`` writes, with the same certificate. Errors are `stemdesk.StemDeskError` subclasses
(`AudioError`, `ModelError`, `MixError`, ...) whose message says what happened and what to do; ``error.setting``
names the argument that would fix it, when there is one. A function loads what it needs when it runs: ``import
stemdesk`` imports neither torch nor any audio library.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, overload

from .core.errors import AudioError, StemDeskError, StemsExist

if TYPE_CHECKING:
    from typing import Unpack

    import numpy as np

    from .export.nullcheck import NullResult
    from .export.remix import RemixResult
    from .io.model_store import ModelCard
    from .io.registry import Registry
    from .jobs.separate import SeparateKeywords
    from .mixer.mix import Mix
    from .session.karaoke import KaraokeResult
    from .session.tasks import Exported
    from .transcribe.stems import MidiResult

PathLike = str | os.PathLike
Progress = Callable[[dict], None]


@dataclass
class Separated:
    """What `separate` made of one song.

    ``stems`` maps each stem's name to its file, in the model's order. ``null`` is the null check the certificate
    records, measured on the written files (`NullResult`: ``null.passed``, ``null.bit_exact``, ``null.peak_dbfs``,
    ``null.worst_regions``; None with ``certify=False``). ``timings`` are seconds: ``load_model``, ``separate``
    (decoding, the model, writing and the null check) and ``total`` (the call, from start to end)."""

    song: Path
    folder: Path
    stems: dict[str, Path]
    null: NullResult | None
    certificate: Path | None
    model: str
    device: str
    seconds_of_audio: float
    timings: dict[str, float]
    instrumental: Path | None = None
    sessions: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the session exporters said about their files
    precision: str = "fp32"  # what the model ran at: "bf16" or "fp32" (see `separate`'s precision)
    # the stems split further (``split=``): {parent: {child: file}} in ``folder/<parent>/``, with their null
    # against the parent in ``split_nulls`` and the whole tree's against the song in the certificate
    splits: dict[str, dict[str, Path]] = field(default_factory=dict)
    split_nulls: dict[str, NullResult | None] = field(default_factory=dict)
    midi: dict[str, Path] = field(default_factory=dict)  # with ``midi=True``: each stem's .mid, and "song": every track


def _registry() -> Registry:
    """The built-ins and every installed plugin (as the command line loads them); a plugin that fails is named in a
    warning and left out."""
    from .plugins import load_plugins

    registry, plugins = load_plugins()
    for plugin in plugins:
        if plugin.error:
            warnings.warn(f"StemDesk plugin disabled: {plugin.error}", RuntimeWarning, stacklevel=3)
    return registry


def _kinds(session: str | Sequence[str] | None) -> list[str]:
    """``"dawproject,rpp"`` or ``["dawproject", "rpp"]`` → the kinds, checked later by the exporters."""
    if session is None:
        return []
    parts = session.split(",") if isinstance(session, str) else list(session)
    return [str(kind).strip() for kind in parts if str(kind).strip()]


def _threads(threads: int | None) -> int:
    """CPU threads for this process: as asked, else as the command line sets them."""
    from .io.process import default_threads

    return default_threads() if threads is None else threads


@overload
def separate(  # type: ignore[overload-overlap]  # a str is a Sequence too: it is one song
    song: PathLike,
    model: str | None = ...,
    out: PathLike = ...,
    *,
    threads: int | None = ...,
    instrumental: bool = ...,
    session: str | Sequence[str] | None = ...,
    overwrite: bool = ...,
    progress: Progress | None = ...,
    midi: bool = ...,
    **options: Unpack[SeparateKeywords],
) -> Separated: ...


@overload
def separate(
    song: Sequence[PathLike],
    model: str | None = ...,
    out: PathLike = ...,
    *,
    threads: int | None = ...,
    instrumental: bool = ...,
    session: str | Sequence[str] | None = ...,
    overwrite: bool = ...,
    progress: Progress | None = ...,
    midi: bool = ...,
    **options: Unpack[SeparateKeywords],
) -> list[Separated]: ...


def separate(
    song: PathLike | Sequence[PathLike],
    model: str | None = None,
    out: PathLike = "stems",
    *,
    threads: int | None = None,
    instrumental: bool = False,
    session: str | Sequence[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    midi: bool = False,
    **options: Unpack[SeparateKeywords],
) -> Separated | list[Separated]:
    """Separate a song file into ``out/<song name>/<stem>.<ext>`` and check that the stems null against it.

    ``song`` is a path (WAV, FLAC, MP3, OGG, AIFF, M4A, or the sound of an MP4, MOV, MKV or WebM file; any rate from
    8 to 384 kHz), or a list of paths: then the model is loaded once and a list of results comes back, one per song,
    in order. ``model`` is a model id (see `models`; default ``stemdesk-4stem``). The other arguments are the command
    line's options of the same names:

    - ``format`` wav, flac, aiff, mp3 or ogg; ``bit_depth`` 16, 24 (default) or "32f". 16- and 24-bit stems add up
      to the song bit for bit; 32-bit float within −138 dBFS; MP3 and OGG cannot null.
    - ``device`` auto, cpu, cuda or mps; ``threads``: CPU threads for torch and numpy in this process (default: all
      cores but one, at most 8, as the command line sets them); ``precision`` auto (bf16 where the hardware
      computes it and the model has parts measured to keep its stems: HTDemucs, the shipped split models), fp32 or
      bf16.
    - ``start`` and ``duration`` (seconds) separate an excerpt; ``segment`` (seconds) trades memory for speed.
    - ``wiener``, ``vocal_gate`` (a, b), ``binarise`` (alpha), ``shifts``: post-processing and test-time shifts;
      each keeps the null.
    - ``split={"vocals": "stemdesk-vocals-leadback", "drums": "stemdesk-drumkit"}`` splits those stems further
      with split models into ``out/<song name>/<stem>/<child>.<ext>``; the children null against their stem and
      the whole tree against the song (`Separated.splits`). A catalog model installed to split a stem splits it
      too (``{"vocals": "mel-roformer-karaoke", "drums": "mdx23c-drumsep"}``); ``clean={"vocals":
      "mel-roformer-dereverb-anvuew"}`` runs a clean-up as such a split, whose children are the stem cleaned and
      what it took out (``vocals/dry``, ``vocals/reverb``), so nothing is lost. One split or clean-up per stem.
    - ``instrumental=True`` also writes ``instrumental.<ext>`` (the song minus the vocals, exactly);
      ``session="dawproject,rpp"`` (or a list) writes DAW sessions of the stems beside them.
    - ``midi=True`` also writes MIDI of the stems (`midi`) into `Separated.midi`, before the sessions, which carry
      it as MIDI tracks; it needs Basic Pitch installed (``stemdesk midi --install``), which is checked before any
      song is separated.
    - ``certify=False`` skips the null check and the certificate; ``model_postprocessing=False`` skips the
      post-processing a model's card asks for (the command line's ``--no-model-postprocessing``).
    - ``overwrite=True`` replaces the stems an earlier separation left in ``out/<song name>``; without it such a
      folder raises StemsExist (a StemDeskError) before any song is separated.
    - ``progress(event)`` is called from this thread with dicts: ``{"message": ...}``, and while separating
      ``{"done": samples, "total": samples, "seconds": elapsed}``.

    Returns a `Separated`. Raises AudioError (the song cannot be read, the folder cannot be written), ModelError
    (an unknown or damaged model), DeviceUnavailable, OutOfMemory or StemDeskError (bad options); nothing partial
    is left behind.
    """
    from .jobs.separate import SeparateKeywords, separate_options
    from .session import tasks

    many = not isinstance(song, str | os.PathLike)
    songs = [Path(song)] if isinstance(song, str | os.PathLike) else [Path(s) for s in song]
    if not songs:
        raise StemDeskError("No songs given to separate.")
    unknown = sorted(set(options) - set(SeparateKeywords.__annotations__))
    if unknown:
        raise TypeError(f"separate() got unexpected keyword arguments: {', '.join(unknown)}")
    chosen = separate_options(model, **options)  # the one place their defaults and checks are
    threads = _threads(threads)
    kinds = _kinds(session)
    engines = tasks.Engines(_registry())
    extras = tasks.Extras(instrumental, kinds, midi=midi)
    if midi:
        from .transcribe.model import basic_pitch_model

        basic_pitch_model()  # raises ModelError saying how to install it, before anything is separated
    results = []
    try:
        folders = tasks.separation_folders(chosen, engines.registry, songs, Path(out), overwrite)
    except StemsExist as error:
        error.args = (f"{error} Pass overwrite=True to replace them, or another out folder.",)
        raise
    for path, folder in zip(songs, folders):
        started = time.monotonic()
        made = tasks.separate(engines, path, folder, chosen, extras, threads=threads, overwrite=overwrite).run(progress)
        result = made.result
        results.append(
            Separated(
                song=path,
                folder=result.outputs[0].parent,
                stems={p.stem: p for p in result.outputs},
                null=result.null,
                certificate=result.certificate,
                model=result.model,
                device=result.device,
                seconds_of_audio=result.frames / result.info.sample_rate,
                timings={
                    "load_model": round(made.load_seconds, 4),
                    "separate": round(result.seconds, 4),
                    "total": round(time.monotonic() - started, 4),
                },
                instrumental=made.instrumental,
                sessions={kind: written.path for kind, written in made.sessions.items()},
                notes=[written.note for written in made.sessions.values() if written.note],
                precision=result.precision,
                splits={s.parent: {p.stem: p for p in s.result.outputs} for s in made.splits},
                split_nulls={s.parent: s.result.null for s in made.splits},
            )
        )
        if made.midi is not None:
            results[-1].midi = {**made.midi.files, "song": made.midi.song}
    return results if many else results[0]


def midi(stems: PathLike, quantise: bool = False, threads: int | None = None, device: str = "auto") -> MidiResult:
    """MIDI of a folder of stems (`stemdesk midi`): ``<stem>.mid`` beside each stem and ``<song>.mid`` with every
    track, with the tempo and key read from them (`MidiResult`: ``files``, ``song``, ``timing``, ``notes``); Basic
    Pitch runs on ``device`` ("auto": a CUDA or Apple GPU where there is one). Raises ModelError when Basic Pitch is
    not installed (``stemdesk midi --install``)."""
    from .session import tasks

    return tasks.midi(Path(stems), quantise, _threads(threads), device).run()


def separate_array(
    audio: np.ndarray,
    rate: int,
    model: str | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    segment: float | None = None,
    wiener: int = 0,
    vocal_gate: tuple[float, float] | None = None,
    binarise: float | None = None,
    shifts: int = 0,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Separate audio held in memory; nothing is written. Returns {stem name: array}, in the model's order.

    ``audio`` is (channels, samples), or (samples,) for mono, at ``rate`` Hz; the stems have its shape. (soundfile
    reads (samples, channels): pass ``audio.T``, and ``.T`` the stems back.)

    The stems add up to the audio exactly: ``np.array_equal(sum(stems.values()), audio)``, in any order of adding.

    - float audio (float32 or float64) gives float64 stems. Exact for every sample of float32 audio and of audio
      read from 16- or 24-bit files, whatever its type (see `stemdesk.export.stems.exact_float_stems` for the one
      case float64 cannot hold: float64 samples that use all 53 bits, where the sum is within one rounding).
    - int16 or int32 audio (soundfile's ``dtype="int16"`` / ``"int32"``) gives stems of the same type whose integer
      sum is the audio, always (each stem stays within the type's range).

    The other arguments are `separate`'s. Raises AudioError for audio it cannot separate (NaN or infinite samples,
    another sample type, an empty array, a rate outside 8–384 kHz) and ModelError for an unknown model.
    """
    import numpy as np

    from .jobs.separate import separate_options
    from .session import tasks

    array = np.asarray(audio)
    mono = array.ndim == 1
    if mono:
        array = array[None, :]
    if array.ndim != 2:
        raise AudioError(f"audio must be (channels, samples) or (samples,), not an array of shape {array.shape}.")
    if array.shape[0] > 64 and array.shape[1] <= 64:
        raise AudioError(
            f"audio looks like (samples, channels) {array.shape}: StemDesk takes (channels, samples). Pass audio.T "
            "(soundfile.read returns samples first)."
        )
    options = separate_options(
        model,
        device=device,
        precision=precision,
        segment=segment,
        wiener=wiener,
        vocal_gate=vocal_gate,
        binarise=binarise,
        shifts=shifts,
    )
    threads = _threads(threads)
    stems = tasks.separate_array(tasks.Engines(_registry()), array, int(rate), options, threads).run(progress)
    return {name: stem[0] if mono else stem for name, stem in stems.items()}


def nullcheck(mix: PathLike, stems: PathLike | Sequence[PathLike], regions: int = 5) -> NullResult:
    """Check that stem files null against the mixture: Σ stems − mix, measured on the files.

    ``stems`` is a folder written by `separate` or a list of stem files (same rate, channels and length as the mix,
    or as an excerpt of it: then pass the excerpt). 16/24-bit PCM stems pass when the sum is bit-exact, float ones
    at −138 dBFS or below, lossy ones when the residual is 12 dB below the mix. Returns a `NullResult`:
    ``passed``, ``bit_exact``, ``peak_dbfs`` / ``rms_dbfs`` (None means silence), each stem's ``energy_share`` and
    the ``regions`` loudest one-second ``worst_regions`` ({start_seconds, end_seconds, peak_dbfs}). A failed null
    is a result, not an error; AudioError is raised for files that cannot be compared.
    """
    from .session import tasks

    paths = [Path(stems)] if isinstance(stems, str | os.PathLike) else [Path(s) for s in stems]
    return tasks.nullcheck(Path(mix), paths, regions).run()


def remix(
    stems_dir: PathLike,
    out: PathLike,
    preset: str | None = None,
    mix: Mix | dict | PathLike | None = None,
    *,
    amount: float = 6.0,
    vocals: float | None = None,
    semitones: float | None = None,
    tempo: float | None = None,
    format: str | None = None,
    bit_depth: str | int | None = None,
    mixture: PathLike | None = None,
    progress: Progress | None = None,
) -> RemixResult:
    """Render a remix of a folder of stems into one file ``out``, with a certificate beside it.

    The mix is a ``preset`` (karaoke, acappella, vocal-up, vocal-down, drumless; ``amount`` dB for vocal-up and
    vocal-down) or ``mix``: a `stemdesk.mixer.mix.Mix`, its dict (``Mix.to_dict()``), a MIX.json file or a project
    (.stemdesk), whose saved mix is rendered. Neither: the stems at unity. Then ``vocals`` sets the vocal level
    (dB), ``semitones`` (−12…12) the key and ``tempo`` (0.5…2) the speed. The format is ``format`` (default:
    ``out``'s extension, else the stems' own) at ``bit_depth`` (default: the stems' own, so a unity mix stays
    exact). With ``mixture`` (the original song) a mix of unity strips is checked to null against it.

    Returns a `stemdesk.export.remix.RemixResult` (``path``, ``frames``, ``seconds``, ``clipped``, ``certificate``,
    and ``null``: the certificate's null section). Raises MixError for a bad preset or value, AudioError for
    stems or files that cannot be read or written.
    """
    from .io.stems import find_stems
    from .session import tasks

    registry = _registry()
    stems = find_stems(Path(stems_dir))
    chosen = _mix(mix, registry)
    made = tasks.remix_mix(stems, preset, amount, chosen, vocals, semitones, tempo)
    fmt = tasks.remix_format(stems, Path(out), format, None if bit_depth is None else str(bit_depth))
    mixture_path = Path(mixture) if mixture is not None else None
    return tasks.bounce(Path(stems_dir), made, Path(out), fmt, mixture_path, kind="remix").run(progress)


def _mix(mix: Mix | dict | PathLike | None, registry: Registry) -> Mix | None:
    from .export.remix import mix_from_file
    from .mixer.mix import Mix
    from .session import project as projects

    if mix is None or isinstance(mix, Mix):
        return mix
    if isinstance(mix, dict):
        return Mix.from_dict(mix, registry)
    path = Path(mix)
    if path.suffix == projects.SUFFIX:
        return projects.load(path, registry).mix
    return mix_from_file(path, registry)


def export_sessions(
    stems_dir: PathLike,
    session: str | Sequence[str] | None = None,
    out: PathLike | None = None,
    *,
    mix: Mix | dict | PathLike | None = None,
    tempo: float | None = None,
    instrumental: bool = False,
    mixture: PathLike | None = None,
) -> Exported:
    """Write DAW sessions (and the instrumental) around a folder of stems, as ``stemdesk export`` does.

    ``session`` is ``"dawproject,rpp"`` or a list of kinds: dawproject (DAWproject 1.0, stems inside), rpp (REAPER,
    stems referenced in place), stems-mp4 / stems-mp4-aac (NI Stem files for DJ software) and what plugins add.
    Each is written to ``out``.<ext>; ``out`` defaults to the stems folder's own path (``stems/song`` →
    ``stems/song.dawproject``). ``mix`` (a Mix, its dict, a MIX.json or a project) gives the tracks their levels,
    pans, effects and automation; ``tempo`` is the session's BPM. ``instrumental=True`` also writes "OUT
    instrumental.<ext>" (the song minus the vocals, exactly); ``mixture`` is the original song (it checks the
    instrumental, and is the mix track of an NI Stem file).

    Returns a `stemdesk.session.tasks.Exported`: ``sessions`` {kind: Written(path, note)}, ``instrumental``,
    ``paths`` and ``notes``. Raises StemDeskError for an unknown kind or nothing to export.
    """
    from .session import tasks

    kinds = _kinds(session)
    if not kinds and not instrumental:
        raise StemDeskError('Nothing to export: give session="dawproject,rpp" and/or instrumental=True.')
    registry = _registry()
    folder = Path(stems_dir)
    base = Path(out) if out is not None else folder.parent / folder.name
    choice = tasks.ExportChoice(instrumental=instrumental, sessions=kinds, tempo=tempo)
    mixture_path = Path(mixture) if mixture is not None else None
    return tasks.export(folder, base, choice, _mix(mix, registry), mixture_path, registry=registry).run()


def models() -> list[ModelCard]:
    """The installed models, shipped ones first (those in plugins' folders too): each a
    `stemdesk.io.model_store.ModelCard` with ``id``, ``estimator``, ``sources`` (its stems), ``sample_rate``,
    ``folder`` and ``raw`` (the whole card: licences, training data, ``metrics``). Pass an ``id`` as ``model=``.
    Loads torch (the cards name the estimators it builds)."""
    from .io.model_store import list_models

    return list_models(registry=_registry())


def make_karaoke(
    song: PathLike,
    lyrics: PathLike,
    outdir: PathLike = "stems",
    *,
    model: str | None = None,
    video: bool = False,
    resolution: int = 1080,
    cdg: bool = False,
    ultrastar: bool = False,
    key: float = 0.0,
    guide_vocal_db: float | None = None,
    keep_backing: bool = False,
    split_model: str | None = None,
    language: str | None = None,
    lead: str | None = None,
    threads: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> KaraokeResult:
    """A karaoke track of ``song`` (`stemdesk karaoke`): its stems separated into ``outdir/<song name>/`` (or the
    ones already there, when their certificate says they are this song's), the words of ``lyrics`` (a text, LRC or
    ASS file) aligned on the lead vocal, the karaoke mix, an enhanced LRC and an ASS file beside the stems, and with
    ``video``, ``cdg`` or ``ultrastar`` an MP4, CD+G with its MP3, an UltraStar song. ``key`` semitones,
    ``guide_vocal_db`` (the lead kept that many dB down), ``keep_backing`` (the vocals split into lead and backing,
    the backing kept) as for the singer. Returns a `stemdesk.session.karaoke.KaraokeResult`: ``folder``, ``lyrics``
    (every word's ``start`` and ``end``), ``mix``, ``files`` by kind, ``unsure`` (lines, 1-based)."""
    from .io.model_store import DEFAULT_MODEL
    from .session import karaoke as job
    from .session.tasks import Engines

    request = job.KaraokeRequest(
        song=Path(song),
        lyrics=Path(lyrics),
        outdir=Path(outdir),
        model=model or DEFAULT_MODEL,
        video=video,
        resolution=resolution,
        cdg=cdg,
        ultrastar=ultrastar,
        key=key,
        guide_vocal_db=guide_vocal_db,
        keep_backing=keep_backing,
        split_model=split_model or job.LEAD_SPLIT,
        language=language,
        lead=lead,
        threads=_threads(threads),
        device=device,
        overwrite=overwrite,
    )
    return job.karaoke(request, Engines(_registry())).run(progress)
