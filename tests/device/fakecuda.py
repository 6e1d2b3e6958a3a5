"""A fake CUDA device on the CPU, strict about devices the way CUDA is: ``with fake_cuda(): ...``.

Inside the context, ``torch.cuda.is_available()`` is True (``device_count`` GPUs), and anything put on
``cuda`` / ``cuda:N`` — a factory call with ``device="cuda"``, ``.to("cuda")``, ``.cuda()``, ``model.to("cuda")``
— becomes a :class:`FakeCudaTensor`: a wrapper tensor subclass holding an ordinary CPU tensor (``elem``) that
reports ``.device == cuda:N`` and ``.is_cuda``. Every ATen operator that reaches a fake tensor goes through
:meth:`FakeCudaTensor.__torch_dispatch__` (below autograd, so forward, backward and optimizer steps alike),
which applies CUDA's device rules before it computes the result on the CPU data:

* a fake tensor meeting an ordinary CPU tensor that is not 0-dim raises :class:`DeviceMixError` with CUDA's
  message ("Expected all tensors to be on the same device ... cuda:0 and cpu!"); 0-dim CPU tensors are
  accepted as CUDA accepts them (CPU scalars), as are CPU index tensors for indexing a CUDA tensor;
* tensors of two fake devices (cuda:0 with cuda:1) raise the same error;
* copies between devices (``copy_``) are allowed, as on CUDA;
* ``.numpy()`` / ``np.asarray`` of a fake tensor raise CUDA's "can't convert cuda:0 device type tensor to
  numpy" (``.cpu()`` first); ``.item()``, ``.tolist()`` and ``bool()`` work (on CUDA they synchronise).

The results of an operator on fake tensors are fake tensors of the same device, so a computation stays "on
the GPU" until it is moved off with ``.cpu()`` / ``.to("cpu")``. The device moves themselves are seen by a
:class:`~torch.overrides.TorchFunctionMode` (factories and ``Tensor.to`` never reach CUDA's real, absent
runtime). ``torch.cuda``'s query and synchronisation functions are stood in for while the context is active.

Limits: the mode sees the Python-level calls of the code under test, not those made inside another
overridable torch function (e.g. inside ``torch.nn.functional.interpolate``'s Python body); the operators
those make are still checked by the subclass. Autocast does not cast (the tensors are CPU tensors below the
wrapper). Checkpoints written from fake tensors hold their CPU data (what ``map_location="cpu"`` gives).
Tensors made inside stay fake after the context, where ``.cpu()`` no longer unwraps them: compare inside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import get_alias_info, return_and_correct_aliasing
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten


class DeviceMixError(RuntimeError):
    """An operator received tensors of two devices (what CUDA refuses)."""


class FakeCudaTensor(torch.Tensor):
    """A CPU tensor (``elem``) that says it lives on ``cuda:<index>`` and obeys CUDA's device rules."""

    elem: torch.Tensor
    index: int

    @staticmethod
    def __new__(cls, elem: torch.Tensor, index: int = 0) -> FakeCudaTensor:
        if type(elem) is not torch.Tensor or elem.device.type != "cpu":
            raise TypeError(f"FakeCudaTensor wraps a plain CPU tensor, got {type(elem).__name__} on {elem.device}")
        r = torch.Tensor._make_wrapper_subclass(cls, elem.size(), strides=elem.stride(),
                                                storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                layout=elem.layout, device=elem.device, requires_grad=False)
        r.elem, r.index = elem, int(index)
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    # the traceable-subclass protocol: module.to("cuda") then swaps parameters in place (torch.utils.swap_tensors)
    def __tensor_flatten__(self) -> tuple[list[str], dict[str, int]]:
        return ["elem"], {"index": self.index}

    @staticmethod
    def __tensor_unflatten__(inner: dict[str, torch.Tensor], meta: dict[str, int], outer_size: Any,
                             outer_stride: Any) -> FakeCudaTensor:
        return FakeCudaTensor(inner["elem"], meta["index"])

    # what Python code sees of the device
    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cuda", self.index)

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False

    def get_device(self) -> int:  # type: ignore[override]
        return self.index

    def numpy(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise TypeError(f"can't convert cuda:{self.index} device type tensor to numpy. Use Tensor.cpu() to copy "
                        "the tensor to host memory first.")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self.numpy()

    def tolist(self) -> Any:  # type: ignore[override]
        return self.elem.tolist()

    def __repr__(self) -> str:  # type: ignore[override]
        return f"FakeCudaTensor(cuda:{self.index}, {self.elem!r})"

    def __reduce_ex__(self, protocol: int) -> Any:  # torch.save / pickle: the CPU data
        return self.elem.__reduce_ex__(protocol)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        if id(self) in memo:
            return memo[id(self)]
        new: torch.Tensor = FakeCudaTensor(self.elem.clone(), self.index)
        if getattr(self, "_is_param", False):
            new = torch.nn.Parameter(new, self.requires_grad)
        elif self.requires_grad:
            new.requires_grad_(True)
        memo[id(self)] = new
        return new

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        index = check_devices(func, args, kwargs)
        out = func(*tree_map(_elem, args), **tree_map(_elem, kwargs))
        out = tree_map(lambda t: _wrap(t, index) if type(t) is torch.Tensor else t, out)
        info = get_alias_info(func)
        if info.outs_write_aliases is None and not info.is_inplace_view_op:
            return out  # views alias through ``elem``: the wrapper's own (empty) storage needs no aliasing
        return return_and_correct_aliasing(func, args, kwargs, out)  # in-place and out=: the argument itself


def _wrap(t: torch.Tensor, index: int) -> FakeCudaTensor:
    """An operator's result as a fake tensor; never an inference tensor, so that autograd can make it a view of a
    normal tensor (a view of a parameter taken under ``torch.inference_mode`` is one on CUDA too)."""
    if torch.is_inference_mode_enabled():
        with torch.inference_mode(False):
            return FakeCudaTensor(t, index)
    return FakeCudaTensor(t, index)


def _elem(x: Any) -> Any:
    return x.elem if isinstance(x, FakeCudaTensor) else x


def is_fake(t: Any) -> bool:
    """Whether ``t`` is a tensor on the fake CUDA device."""
    return isinstance(t, FakeCudaTensor)


# operators that take tensors of two devices on CUDA too
CROSS_DEVICE_OPS = {aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default}
# indexing a CUDA tensor with CPU index tensors is allowed (the indices are moved)
INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def _mix_error(func: Any, a: str, b: str, detail: str = "") -> DeviceMixError:
    return DeviceMixError(f"{func}: Expected all tensors to be on the same device, but found at least two devices, "
                          f"{a} and {b}!{detail}")


def check_devices(func: Any, args: tuple, kwargs: dict) -> int:
    """Apply CUDA's device rules to an operator's tensor arguments; return the fake device index they share."""
    checked = (args, kwargs)
    if func in INDEX_OPS:
        self, indices, rest = args[0], args[1], args[2:]
        index_tensors = [t for t in indices if isinstance(t, torch.Tensor)]
        if not is_fake(self):
            if any(is_fake(t) for t in index_tensors):
                raise DeviceMixError(f"{func}: indices should be either on cpu or on the same device as the indexed "
                                     "tensor (cpu)")
        else:
            index_tensors = [t for t in index_tensors if is_fake(t)]  # CPU indices are fine
        checked = ([self, *index_tensors, *rest], kwargs)
    tensors = [t for t in tree_flatten(checked)[0] if isinstance(t, torch.Tensor)]
    fake = sorted({t.index for t in tensors if is_fake(t)})
    if not fake:  # only reached through CPU tensors inside fake ones: cannot happen
        raise AssertionError(f"{func} dispatched to FakeCudaTensor without a fake tensor")
    if len(fake) > 1:
        raise _mix_error(func, f"cuda:{fake[0]}", f"cuda:{fake[1]}")
    if func not in CROSS_DEVICE_OPS:
        plain = [t for t in tensors if not is_fake(t) and t.device.type == "cpu" and t.dim() > 0]
        if plain:
            raise _mix_error(func, f"cuda:{fake[0]}", "cpu",
                             f" (a CPU tensor of shape {tuple(plain[0].shape)} meets a cuda:{fake[0]} tensor)")
    return fake[0]


class _Move(torch.autograd.Function):
    """A differentiable copy between the CPU (``index=None``) and fake device ``index``."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, index: int | None) -> torch.Tensor:  # type: ignore[override]
        ctx.source = t.index if is_fake(t) else None
        data = _elem(t).clone()
        return data if index is None else FakeCudaTensor(data, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return move(grad, ctx.source), None


def move(t: torch.Tensor, index: int | None) -> torch.Tensor:
    """Copy ``t`` to fake device ``index`` (``None``: the CPU), or return it when it is there already."""
    here = t.index if is_fake(t) else (None if t.device.type == "cpu" else "other")
    if here == index:
        return t
    if here == "other":
        raise DeviceMixError(f"cannot move a {t.device} tensor under fake_cuda")
    return _Move.apply(t, index)


class FakeCudaMode(TorchFunctionMode):
    """Turns device requests for ``cuda`` / ``cuda:N`` into fake tensors (see the module docstring)."""

    def __init__(self, device_count: int = 2) -> None:
        super().__init__()
        self.device_count = device_count
        self.current = 0
        self.synchronized: list[int] = []  # the GPU of every torch.cuda.synchronize call, in order

    def index_of(self, device: Any) -> int | None:
        """The fake index of a requested device (``None`` for the CPU); unknown ordinals are CUDA's error."""
        if isinstance(device, int):
            device = torch.device("cuda", device)
        device = torch.device(device)
        if device.type == "cpu":
            return None
        if device.type != "cuda":
            raise DeviceMixError(f"fake_cuda knows cpu and cuda, not {device}")
        index = self.current if device.index is None else device.index
        if not 0 <= index < self.device_count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return index

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to:
            return self._to(args[0], args[1:], kwargs)
        if func is torch.Tensor.cuda:
            device = args[1] if len(args) > 1 else kwargs.get("device")
            return move(args[0], self.index_of("cuda" if device is None else device))
        if func is torch.Tensor.cpu:
            return move(args[0], None)
        if kwargs.get("device") is not None:  # factories: torch.zeros(..., device=...), torch.as_tensor(...)
            index = self.index_of(kwargs["device"])
            if index is not None:
                requires_grad = kwargs.pop("requires_grad", False)
                kwargs["device"] = "cpu"
                out = func(*tree_map(lambda t: move(t, None) if is_fake(t) else t, args), **kwargs)
                out = tree_map(lambda t: FakeCudaTensor(t.detach().clone(), index)
                               if type(t) is torch.Tensor else t, out)
                if requires_grad:
                    out.requires_grad_(True)
                return out
            args = tree_map(lambda t: move(t, None) if is_fake(t) else t, args)
        return func(*args, **kwargs)

    def _to(self, t: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
        """``Tensor.to``: the dtype / memory-format part on the tensor's own device, then the device move."""
        copy = kwargs.pop("copy", False)
        if args and isinstance(args[0], torch.Tensor):  # .to(other, non_blocking, copy)
            device, dtype = args[0].device, args[0].dtype
            non_blocking = args[1] if len(args) > 1 else kwargs.get("non_blocking", False)
            copy = args[2] if len(args) > 2 else copy
            memory_format = kwargs.get("memory_format")
        else:
            args = list(args)
            if len(args) == 4 or (len(args) == 3 and isinstance(args[0], torch.dtype)):
                copy = args.pop()
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        target = (t.index if is_fake(t) else None) if device is None else self.index_of(device)
        if not is_fake(t) and target is not None:  # CPU -> fake: convert on the CPU, then move
            converted = torch.Tensor.to(t, None, dtype, non_blocking, False, memory_format=memory_format)
            return move(converted, target)
        if is_fake(t) and target != t.index:  # fake -> CPU or another fake device
            return torch.Tensor.to(move(t, target), None, dtype, non_blocking, False, memory_format=memory_format)
        return torch.Tensor.to(t, None, dtype, non_blocking, copy, memory_format=memory_format)


class _Stream:
    """The current (never capturing) stream of a fake GPU."""

    def is_capturing(self) -> bool:
        return False

    def synchronize(self) -> None:
        return None


class _CudaStandIns:
    """Stand-ins for the ``torch.cuda`` / ``torch.accelerator`` functions that ask about or wait for the GPUs."""

    def __init__(self, mode: FakeCudaMode, capability: tuple[int, int]) -> None:
        self.mode, self.capability = mode, capability

    def index(self, device: Any = None) -> int:
        """The fake GPU meant by ``device`` (``None``: the current one); an unknown ordinal is CUDA's error."""
        if device is None:
            return self.mode.current
        return int(self.mode.index_of(device))

    def set_device(self, device: Any) -> None:
        self.mode.current = self.index(device)

    def synchronize(self, device: Any = None) -> None:
        self.mode.synchronized.append(self.index(device))

    def get_device_name(self, device: Any = None) -> str:
        return f"Fake CUDA GPU {self.index(device)}"

    def get_device_capability(self, device: Any = None) -> tuple[int, int]:
        self.index(device)
        return self.capability

    def get_device_properties(self, device: Any = None) -> Any:
        self.index(device)
        return mock.Mock(major=self.capability[0], minor=self.capability[1], total_memory=16 * 2**30,
                         name=self.get_device_name(device), multi_processor_count=8)

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return including_emulation or self.capability >= (8, 0)  # as torch: emulated bf16 counts by default

    def get_rng_state(self, device: Any = "cuda") -> torch.Tensor:
        self.index(device)
        return torch.get_rng_state()

    def set_rng_state(self, state: torch.Tensor, device: Any = "cuda") -> None:
        self.index(device)

    def current_stream(self, device: Any = None) -> _Stream:
        self.index(device)
        return _Stream()

    def patches(self) -> list[tuple[Any, str, Any]]:
        """``(module, name, replacement)`` of everything stood in for."""
        nothing = lambda *args, **kwargs: None  # noqa: E731
        zero = lambda *args, **kwargs: 0  # noqa: E731
        cuda = {"is_available": lambda: True, "device_count": lambda: self.mode.device_count,
                "current_device": lambda: self.mode.current, "set_device": self.set_device,
                "synchronize": self.synchronize, "get_device_name": self.get_device_name,
                "get_device_capability": self.get_device_capability,
                "get_device_properties": self.get_device_properties, "is_bf16_supported": self.is_bf16_supported,
                "get_rng_state": self.get_rng_state, "set_rng_state": self.set_rng_state,
                "current_stream": self.current_stream, "manual_seed": nothing, "manual_seed_all": nothing,
                "empty_cache": nothing, "memory_allocated": zero, "max_memory_allocated": zero,
                "reset_peak_memory_stats": nothing}
        accelerator = {"is_available": lambda: True, "device_count": lambda: self.mode.device_count,
                       "current_device_index": lambda: self.mode.current, "set_device_index": self.set_device,
                       "current_stream": self.current_stream, "synchronize": self.synchronize}
        return ([(torch.cuda, k, v) for k, v in cuda.items()]
                + [(torch.accelerator, k, v) for k, v in accelerator.items()]
                + [(torch.Tensor, "pin_memory", lambda t, device=None: move(t, None)),
                   (torch.Tensor, "is_pinned", lambda t, device=None: not is_fake(t))])


@contextlib.contextmanager
def fake_cuda(device_count: int = 2, capability: tuple[int, int] = (8, 0)) -> Iterator[FakeCudaMode]:
    """Run the body with ``device_count`` fake CUDA GPUs of compute ``capability`` (see the module docstring)."""
    mode = FakeCudaMode(device_count)
    with contextlib.ExitStack() as stack:
        for module, name, replacement in _CudaStandIns(mode, capability).patches():
            stack.enter_context(mock.patch.object(module, name, replacement))
        stack.enter_context(mode)
        yield mode
