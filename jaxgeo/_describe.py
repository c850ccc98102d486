"""A text that identifies a configuration across processes: what checkpoints compare
to tell whether they belong to a run."""

import dataclasses
import functools
import hashlib
import types

import jax
import numpy as np


def describe(obj, depth: int = 0, seen: frozenset = frozenset()) -> str:
    """A text that identifies a configuration across processes (no addresses): numbers
    and strings by value, arrays by shape, dtype and bytes, containers, dataclasses
    (Equinox modules) and `functools.partial` by their parts, functions by their
    qualified name and the values their closures capture (where optax keeps its
    hyperparameters); any other object by its type."""
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        return repr(obj)
    if depth > 16 or id(obj) in seen:
        return "..."
    seen = seen | {id(obj)}

    def part(o) -> str:
        return describe(o, depth + 1, seen)

    if isinstance(obj, np.ndarray | np.generic | jax.Array):
        array = np.ascontiguousarray(obj)
        return f"array{array.shape}{array.dtype}:{hashlib.sha256(array.tobytes()).hexdigest()}"
    if isinstance(obj, tuple | list):
        return f"{type(obj).__name__}({','.join(part(o) for o in obj)})"
    if isinstance(obj, dict):
        items = sorted((part(k), part(v)) for k, v in obj.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(obj, functools.partial):
        return f"partial({part(obj.func)},{part(obj.args)},{part(obj.keywords)})"
    if isinstance(obj, types.MethodType):
        return f"method({part(obj.__func__)},{part(obj.__self__)})"
    if isinstance(obj, types.FunctionType):
        captured = [cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)]
        defaults = (obj.__defaults__, obj.__kwdefaults__)
        return f"{obj.__module__}.{obj.__qualname__}({part(captured)},{part(defaults)})"
    if dataclasses.is_dataclass(obj):
        fields = {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
        return f"{type(obj).__qualname__}{part(fields)}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a closure variable not assigned yet
        return False
    return True
