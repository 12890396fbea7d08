"""Step hooks shared by the families: run after every optimiser step (see `zoo.train.registries`).

A recipe lists its hooks in ``after_step`` (``{name: options}``, run in that order); the default is
``{"clamp_parameters": {}}``. Overrides add one: ``after_step.ema={'momentum': 0.996}``.

=====================  =========================================================================================
hook                   effect
=====================  =========================================================================================
``clamp_parameters``   calls ``model.clamp_parameters()`` when the model defines it: the protocol for parameter
                       constraints that belong to a model (SpikGRU's leaks in [0, 1])
``ema``                exponential moving average of a student submodule into a teacher submodule, with the
                       momentum following a cosine from `momentum` to `final_momentum` over the run (BYOL)
=====================  =========================================================================================
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.train.registries import register_step_hook

__all__ = ["clamp_parameters", "ema", "ema_momentum"]


@register_step_hook("clamp_parameters")
def clamp_parameters(model: nn.Module, step: int, total_steps: int) -> None:
    """Call ``model.clamp_parameters()`` (in place, no arguments) if the model defines it; otherwise nothing."""
    clamp = getattr(model, "clamp_parameters", None)
    if clamp is not None:
        clamp()


def ema_momentum(step: int, total_steps: int, momentum: float, final_momentum: float) -> float:
    """BYOL's schedule: ``final - (final - momentum) * (1 + cos(pi * k / K)) / 2`` with k = step - 1, K = total_steps.

    The first step uses `momentum`, the momentum then rises (for final > momentum) to `final_momentum` at the end.
    """
    progress = min(max(step - 1, 0) / max(total_steps, 1), 1.0)
    return final_momentum - (final_momentum - momentum) * (1.0 + math.cos(math.pi * progress)) / 2.0


@register_step_hook("ema")
def ema(
    model: nn.Module,
    step: int,
    total_steps: int,
    student: str = "student",
    teacher: str = "teacher",
    momentum: float = 0.999,
    final_momentum: float = 1.0,
) -> None:
    """``teacher <- m * teacher + (1 - m) * student`` for every parameter, m = `ema_momentum` of this step.

    Args:
        student, teacher: names of two submodules of `model` (``model.get_submodule``) with identical parameter
            names and shapes. The teacher's parameters must not be trained (``requires_grad=False``); its
            buffers (e.g. BatchNorm statistics) are left as the teacher computes them.
        momentum, final_momentum: the momentum at the first and at the last step, each in [0, 1].

    Raises:
        ValueError: a missing submodule, mismatched parameters, a trainable teacher or a momentum outside [0, 1].
    """
    if not (0.0 <= momentum <= 1.0 and 0.0 <= final_momentum <= 1.0):
        raise ValueError(f"ema: momentum and final_momentum must be in [0, 1], got {momentum}, {final_momentum}")
    try:
        source, target = model.get_submodule(student), model.get_submodule(teacher)
    except AttributeError as error:
        raise ValueError(f"ema: {error}") from None
    student_parameters = dict(source.named_parameters())
    teacher_parameters = dict(target.named_parameters())
    if list(student_parameters) != list(teacher_parameters):
        raise ValueError(f"ema: {student!r} and {teacher!r} have different parameters")
    trainable = [name for name, parameter in teacher_parameters.items() if parameter.requires_grad]
    if trainable:
        raise ValueError(f"ema: teacher {teacher!r} has trainable parameters ({', '.join(trainable[:5])}); freeze them")
    weight = 1.0 - ema_momentum(step, total_steps, momentum, final_momentum)
    with torch.no_grad():
        torch._foreach_lerp_(list(teacher_parameters.values()), list(student_parameters.values()), weight)
