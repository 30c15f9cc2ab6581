"""Hooks on the tracked modules: the layer input in forward, the output gradient in backward. No math.

:class:`GradientCapture` is a context manager. Inside it, every forward of a tracked module keeps its input
``a`` ([B, T, d_in], detached, in the model's dtype) and registers a hook on its output; when the backward
pass reaches that output, ``sink(index, a, g)`` is called with the output gradient ``g`` ([B, T, d_out]) and
``a`` is released. :meth:`GradientCapture.backward` runs that backward with ``torch.autograd.grad`` on the
tracked outputs only: no parameter ``.grad`` is touched and no weight-gradient GEMM is computed. When a
tracked module's input does not require grad (a frozen model), a detached leaf that does is substituted, so
the backward reaches the module without computing gradients of any parameter.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trustattr.errors import TrustAttrError

__all__ = ["CaptureError", "GradientCapture", "Sink"]

Sink = Callable[[int, torch.Tensor, torch.Tensor], None]  # (module index, a [B,T,d_in], g [B,T,d_out])


class CaptureError(TrustAttrError):
    """A tracked module that the loss does not reach, or that runs more than once per forward."""


class GradientCapture:
    """Forward/backward hooks on ``modules`` feeding ``sink``; use as ``with GradientCapture(...) as cap:``."""

    def __init__(self, modules: dict[str, nn.Module], sink: Sink) -> None:
        self.names = list(modules)
        self._modules = list(modules.values())
        self._sink = sink
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._inputs: dict[int, torch.Tensor] = {}
        self._outputs: dict[int, torch.Tensor] = {}

    def __enter__(self) -> GradientCapture:
        for index, module in enumerate(self._modules):
            self._handles.append(module.register_forward_pre_hook(self._make_leaf))
            self._handles.append(module.register_forward_hook(self._saver(index)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.reset()

    def reset(self) -> None:
        """Forget what the last forward saved (call between batches)."""
        self._inputs.clear()
        self._outputs.clear()

    @staticmethod
    def _make_leaf(module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        if torch.is_grad_enabled() and not x.requires_grad:
            return (x.detach().requires_grad_(True), *args[1:])
        return None

    def _saver(self, index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not torch.is_grad_enabled():
                return
            if index in self._outputs:
                raise CaptureError(
                    f"tracked module '{self.names[index]}' ran twice in one forward; track each use separately"
                )
            self._inputs[index] = args[0].detach()
            self._outputs[index] = output
            output.register_hook(self._releaser(index))

        return hook

    def _releaser(self, index: int) -> Callable:
        def hook(grad: torch.Tensor) -> None:
            self._sink(index, self._inputs.pop(index), grad)

        return hook

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate the scalar ``loss`` to the tracked outputs, feeding ``sink`` once per module."""
        missing = [self.names[i] for i in range(len(self._modules)) if i not in self._outputs]
        if missing:
            raise CaptureError(f"tracked modules did not run in the forward pass: {', '.join(missing[:4])}")
        outputs = [self._outputs[i] for i in range(len(self._modules))]
        torch.autograd.grad(loss, outputs, allow_unused=True)
        unreached = [self.names[i] for i in self._inputs]
        self.reset()
        if unreached:
            raise CaptureError(f"the loss does not depend on tracked modules: {', '.join(unreached[:4])}")
