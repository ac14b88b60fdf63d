"""Reduced precision where it is harmless: the arithmetic a network spends most of its time on, in bfloat16.

A network names the parts that may compute in bfloat16 (`reduced_precision_modules`: for HTDemucs its transformer's
dense layers and attention, and the convolutions that enter and leave it). Each such part keeps float32 at its
edges: its inputs are rounded to bfloat16 as it starts, its output is float32 again as it ends, so residual sums,
normalisations, the spectral path and every accumulation outside those parts stay float32. Casting a whole network
instead (autocast) rounds the residual streams too and ruins the stems (docs/htdemucs.md has the measurements).

"auto" chooses bfloat16 only where it pays and where its effect on the stems was measured: on a CPU with bfloat16
dot products (AVX-512 BF16 or AMX) or a CUDA GPU that supports bfloat16, for a network whose reduced-precision
stems were measured against float32 on real songs (``reduced_precision_measured``: its class says so for HTDemucs,
its card's ``bf16_measured`` for an Open-Unmix network, the shipped split models). Everywhere
else float32: bfloat16 emulated in software runs slower than float32, and an unmeasured network (a RoFormer, whose
real weights users import and StemDesk has never seen) runs in bfloat16 only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")


def choose_precision(asked: str, device: torch.device, estimator: Any, cpu_bf16: Sequence[str] = ()) -> tuple[str, str]:
    """The precision a separation runs at and why, as (``"fp32"`` or ``"bf16"``, a reason for people).
    ``asked``: "auto", "fp32" or "bf16" (forced, even where it is slow); ``cpu_bf16``: the CPU's bfloat16
    instructions (`stemdesk.io.process.cpu_bf16_flags`)."""
    if asked not in PRECISIONS:
        raise ValueError(f"unknown precision {asked!r}; choose one of {', '.join(PRECISIONS)}")
    parts = reduced_precision_modules(estimator)
    if asked == "fp32":
        return "fp32", "asked for"
    if not parts:
        return "fp32", "this model has no part that runs in reduced precision"
    if asked == "bf16":
        return "bf16", "asked for"
    if not getattr(estimator, "reduced_precision_measured", False):
        return "fp32", "auto: this model's stems in reduced precision are not measured (--precision bf16 forces it)"
    if device.type == "cpu":
        if cpu_bf16:
            return "bf16", f"auto: this CPU computes bfloat16 in hardware ({', '.join(cpu_bf16)})"
        return "fp32", "auto: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX)"
    if device.type == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: this GPU computes bfloat16"
        return "fp32", "auto: this GPU has no bfloat16"
    return "fp32", f"auto: reduced precision is not measured on {device.type}"


def reduced_precision_modules(estimator: Any) -> list[torch.nn.Module]:
    """The parts of ``estimator`` (an ensemble member, any model) that may compute in bfloat16; none unless its
    class names them."""
    named = getattr(estimator, "reduced_precision_modules", None)
    return list(named()) if callable(named) else []


def _cast(values: Iterable[Any], dtype: torch.dtype) -> tuple[Any, ...]:
    """Floating tensors to ``dtype``; a tensor passed twice stays one tensor (attention checks ``query is key``)."""
    import torch

    done: dict[int, Any] = {}
    out = []
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if id(value) not in done:
                done[id(value)] = value.to(dtype)
            value = done[id(value)]
        out.append(value)
    return tuple(out)


def apply_precision(estimator: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Make ``estimator``'s named parts compute in ``precision`` ("bf16"; "fp32" changes nothing), in place: their
    weights are stored in bfloat16, their inputs rounded as they start, their outputs float32 again. Parameter
    names stay as they are. Returns the estimator, with ``precision`` set on it."""
    import torch

    if precision == "fp32":
        estimator.precision = "fp32"  # type: ignore[assignment]
        return estimator
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}")
    dtype = torch.bfloat16

    def enter(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return _cast(args, dtype)

    def leave(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return output.float()
        if isinstance(output, tuple):
            return tuple(o.float() if isinstance(o, torch.Tensor) else o for o in output)
        return output

    for module in reduced_precision_modules(estimator):
        module.to(dtype)
        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)
    estimator.precision = "bf16"  # type: ignore[assignment]
    return estimator
