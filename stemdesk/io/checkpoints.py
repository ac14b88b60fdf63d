"""Reading other tools' PyTorch checkpoints (``.th``, ``.pth``, ``.ckpt``) without running any code from them.

A checkpoint written by ``torch.save`` is a pickle, and unpickling calls whatever functions the file names: a file
can run any program as it loads. StemDesk reads one in two steps, and neither imports a module the file names:

1. Every global the pickle refers to is listed by walking its opcodes (`pickletools.genops`, which parses and
   executes nothing). Anything outside a short allow-list (torch's tensor rebuild functions and storage types,
   ``collections.OrderedDict``) is refused before loading, naming what the file asked for. Two more names are
   accepted as inert stand-ins: ``fractions.Fraction`` (Demucs stores its segment length as one), rebuilt from its
   text, and Demucs's model classes (``demucs.*``), which become a `ClassReference` holding the class's name; the
   class is never imported or called (calling the stand-in refuses the file).
2. The file is loaded with ``torch.load(weights_only=True)``, torch's own restricted unpickler, with only those
   stand-ins added to its allow-list: a second wall behind the first.

Both the zip layout of torch ≥ 1.6 and the older single-pickle layout (Open-Unmix's 2019 files) are read.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import torch

from ..core.errors import ModelError

SUPPORTED = "Demucs/HTDemucs .th, Open-Unmix .pth and BS-RoFormer, Mel-RoFormer or MDX23C .ckpt (with their YAML)"

# What a checkpoint of tensors and plain containers refers to: torch's rebuild functions and storage classes.
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat")
ALLOWED_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
        "torch.storage.UntypedStorage",
        "torch.storage._load_from_bytes",
        "_codecs.encode",  # how protocol-2 pickles store bytes
        *(f"torch.{kind}Storage" for kind in _STORAGES),
        *(f"torch.{name}" for name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")),
    }
)
FRACTION = "fractions.Fraction"
DEMUCS_PREFIX = "demucs."  # Demucs's packages store their model class by name


class ClassReference:
    """The stand-in for a class a checkpoint names (Demucs stores its model class): only its dotted name."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle_refusal(self.name)

    def __repr__(self) -> str:
        return f"ClassReference({self.name!r})"


def pickle_refusal(name: str) -> Exception:
    import pickle

    return pickle.UnpicklingError(f"the checkpoint asks to construct {name}")


def _fraction(*args: Any) -> Fraction:
    """``fractions.Fraction`` as pickled (its text, or a numerator and denominator), and nothing else."""
    if not args or len(args) > 2 or not all(isinstance(a, (str, int)) for a in args):
        raise pickle_refusal(FRACTION)
    return Fraction(*args)


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _globals_in_pickle(stream: IO[bytes]) -> Iterator[str]:
    """The globals one pickle names, from its opcodes alone. A STACK_GLOBAL whose module and name are not two
    strings just pushed (directly or from the memo) yields "<unreadable>"."""
    memo: dict[int, str | None] = {}
    pushed: list[str | None] = []  # what each op pushed, for STACK_GLOBAL's two operands
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attribute = str(arg).partition(" ")
            yield f"{module}.{attribute}"
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module_name = pushed[-2:] if len(pushed) >= 2 else [None, None]
            yield "<unreadable>" if None in module_name else f"{module_name[0]}.{module_name[1]}"
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else arg.decode("latin-1") if isinstance(arg, bytes) else None)
        elif name in _GET_OPS:
            pushed.append(memo.get(arg) if isinstance(arg, int) else None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in _PUT_OPS and isinstance(arg, int):
            memo[arg] = pushed[-1] if pushed else None
        elif name not in ("FRAME", "PROTO"):
            pushed.append(None)
        if len(pushed) > 64:
            del pushed[:32]


def checkpoint_globals(path: Path) -> list[str]:
    """Every global the checkpoint's pickles name, in order of first use: data.pkl of a zip checkpoint, or the
    consecutive pickles at the start of a legacy one (magic number, protocol, system info, the object, its storage
    keys; the raw tensor bytes after them are not a pickle). Raises ValueError when the first pickle cannot be
    parsed."""
    found: dict[str, None] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m == "data.pkl" or m.endswith("/data.pkl")]
            if not members:
                raise ValueError("a zip file without data.pkl")
            for member in members:
                with archive.open(member) as handle:
                    found.update(dict.fromkeys(_globals_in_pickle(handle)))
        return list(found)
    with open(path, "rb") as handle:
        for index in range(5):
            try:
                found.update(dict.fromkeys(_globals_in_pickle(handle)))
            except ValueError:
                if index == 0:
                    raise
                break
    return list(found)


def _refusal(path: Path, names: Iterable[str]) -> ModelError:
    shown = ", ".join(sorted(names)[:3])
    return ModelError(
        f'Refused "{path.name}": loading it would call {shown}, which is not part of model weights (a pickled '
        "checkpoint can run any program while it loads). Nothing from it was run or installed. Use the file only "
        f"if you trust where it came from and ask its author for a safetensors file; StemDesk imports {SUPPORTED}."
    )


def _damaged(path: Path, detail: str) -> ModelError:
    return ModelError(
        f'"{path.name}" is incomplete or damaged ({detail}); the download may have stopped early. Download it '
        "again and import it once more; nothing was installed."
    )


def _not_a_checkpoint(path: Path, detail: str) -> ModelError:
    return ModelError(
        f'"{path.name}" is not a PyTorch checkpoint ({detail}). StemDesk imports {SUPPORTED}; check that you chose '
        "the model file itself, not a web page or an archive holding it."
    )


def read_checkpoint(path: Path) -> Any:
    """The object a ``torch.save`` file holds (dicts, lists, numbers, strings, tensors, and the stand-ins above),
    loaded without running code from it. Raises ModelError saying what was wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'"{path}" does not exist or is not a file. Check the path.')
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "it is empty")
    with open(path, "rb") as handle:
        head = handle.read(4)
    zipped = zipfile.is_zipfile(path)
    if head.startswith(b"PK") and not zipped:
        raise _damaged(path, "its zip directory is missing")
    try:
        names = checkpoint_globals(path)
    except (EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise _damaged(path, str(error) or "it ends early") from None
    except ValueError as error:
        if head[:1] == b"\x80" or zipped:
            raise _damaged(path, str(error)) from None
        raise _not_a_checkpoint(path, "it does not start like one") from None
    refused = [n for n in names if n not in ALLOWED_GLOBALS and n != FRACTION and not n.startswith(DEMUCS_PREFIX)]
    if refused:
        raise _refusal(path, refused)
    stand_ins: list[Any] = [(_fraction, FRACTION)]
    stand_ins += [(ClassReference(n), n) for n in names if n.startswith(DEMUCS_PREFIX)]
    import pickle
    import warnings

    try:
        with torch.serialization.safe_globals(stand_ins), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as error:
        text = str(error)
        asked = re.findall(r"GLOBAL ([\w.]+)", text) or re.findall(r"asks to construct ([\w.]+)", text)
        if asked:
            raise _refusal(path, asked) from None
        raise _not_a_checkpoint(path, text.splitlines()[-1] if text else "unreadable") from None
    except (EOFError, RuntimeError, OSError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _damaged(path, detail[:160]) from None


def tensors_of(obj: Any, what: str, path: Path) -> dict[str, torch.Tensor]:
    """A state dict's tensors as float32 (or their own integer type), checked to be a mapping of names to tensors."""
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f'"{path.name}": its {what} is not a mapping of parameter names to tensors. {SUPPORTED}.')
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelError(
                f'"{path.name}": its {what} holds {type(value).__name__} under {key!r}, not a tensor; it is not a '
                f"checkpoint StemDesk can import ({SUPPORTED})."
            )
        tensor = value.detach().to("cpu")
        out[key] = tensor.float() if tensor.is_floating_point() else tensor.clone()
    return out
