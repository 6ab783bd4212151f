"""What a call did, for the plan executor: every kernel call and array conversion, in order.

Mode AOT records one call per input geometry (``aotkernels.pytensor.loop``) and replays it
from C (``planner``, ``executor``).
Replaying is only sound if nothing the call did escapes the record, so every place that
calls a kernel or fills, copies or converts an array that a kernel then reads reports it
here, and every NumPy fallback that computes a result says so (``opaque``). A plan refuses
any node whose kernels read memory the record does not explain, or that has an opaque
step, which makes an unreported NumPy copy a missed plan, never a wrong one.

Recording is per thread and off unless a plan is being built: one attribute read per call.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np


class Kernel(NamedTuple):
    """A kernel call: the resolved call (``call.Prepared``: function, signature, geometry,
    statuses) and the arrays passed (inputs, then the output)."""

    prepared: object
    arrays: list


class Convert(NamedTuple):
    """``dst[...] = src`` (a copy or dtype conversion NumPy made)."""

    src: np.ndarray
    dst: np.ndarray


class Scratch(NamedTuple):
    """A buffer the runtime allocated for a node's intermediate values; the node's kernels
    write it before they read it (a fused expression's temporaries)."""

    array: np.ndarray


class Workspace(NamedTuple):
    """Memory a kernel writes before it reads and uses only inside the call (a LAPACK
    factorization, its pivots): scratch that counts as written when the kernel starts."""

    array: np.ndarray


class Opaque(NamedTuple):
    """Work the record cannot show (NumPy computed it): the node cannot be replayed."""

    what: str


class Literal(NamedTuple):
    """An array the runtime filled from Python numbers: its contents never change."""

    array: np.ndarray


_state = threading.local()


def start() -> list | None:
    """Begin recording into a new list; returns what was being recorded before."""
    prev = getattr(_state, "calls", None)
    _state.calls = []
    return prev


def stop(prev: list | None) -> list:
    """End recording, restore ``prev`` (from ``start``) and return what was recorded."""
    calls = _state.calls
    _state.calls = prev
    return calls


@contextmanager
def capture():
    """``with capture() as calls``: the calls made inside, also kept by a recording around
    it (where did this run? ``source(calls)``)."""
    outer = start()
    calls = _state.calls
    try:
        yield calls
    finally:
        stop(outer)
        if outer is not None:
            outer.extend(calls)


@contextmanager
def paused():
    """Work inside is not part of the call being recorded (e.g. resolving for a report)."""
    prev = getattr(_state, "calls", None)
    _state.calls = None
    try:
        yield
    finally:
        _state.calls = prev


def active() -> bool:
    return getattr(_state, "calls", None) is not None


def kernel(prepared, arrays: list) -> None:
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Kernel(prepared, arrays))


def convert(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Convert(src, dst))
    return dst


def literal(array: np.ndarray) -> np.ndarray:
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Literal(array))
    return array


def scratch(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` for intermediate values, recorded."""
    array = np.empty(shape, dtype)
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Scratch(array))
    return array


def workspace(shape, dtype, order: str = "C") -> np.ndarray:
    """``np.empty(shape, dtype, order)`` for a kernel's workspace, recorded."""
    array = np.empty(shape, dtype, order=order)
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Workspace(array))
    return array


def opaque(what: str) -> None:
    """Mark the node being recorded as computed outside the kernels (a NumPy fallback)."""
    calls = getattr(_state, "calls", None)
    if calls is not None:
        calls.append(Opaque(what))


def source(calls: list) -> str | None:
    """Where recorded work ran: "numpy" if any of it was computed outside the kernels,
    else "jit" if a JIT-compiled kernel ran, else "aot"; None if no kernel ran at all."""
    kernels = [c.prepared.source for c in calls if isinstance(c, Kernel)]
    if any(isinstance(c, Opaque) for c in calls):
        return "numpy"
    if not kernels:
        return None
    return "jit" if "jit" in kernels else "aot"


def jit_keys(calls: list) -> tuple[str, ...]:
    """The signature keys of the JIT-compiled kernels among recorded calls (a key outside
    the catalog is a kernel no wheel ships: ``build-kernels --from-usage`` material)."""
    return tuple(dict.fromkeys(c.prepared.sig.key for c in calls
                               if isinstance(c, Kernel) and c.prepared.source == "jit"))


def astype(a: np.ndarray, dtype) -> np.ndarray:
    """``a.astype(dtype)``, recorded."""
    return convert(a, a.astype(dtype))


def copy(a: np.ndarray) -> np.ndarray:
    """``a.copy()``, recorded."""
    return convert(a, a.copy())


def full(shape, value, dtype) -> np.ndarray:
    """``np.full``, recorded as a copy from a 0-d literal (a plan replays it as a kernel)."""
    if not active():
        return np.full(shape, value, dtype)
    out = np.empty(shape, dtype)
    start_value = literal(np.array(value, dtype))
    out[...] = start_value
    return convert(np.broadcast_to(start_value, out.shape), out)
