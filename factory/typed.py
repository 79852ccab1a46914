"""Fill typed dataclasses from plain YAML data, failing fast with messages a user can act on.

Why not pydantic: recipes are plain dataclasses (as in TRL and open-r1) and need only a few
rules — known keys, the declared type, `Literal` choices, nested dataclasses — with errors
that name the dotted key, the bad value, what is allowed and a close match for typos.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from factory.errors import RecipeError


def build(cls: type, data: Any, path: str = "") -> Any:
    """Instantiate dataclass `cls` from a mapping, checking every key and value."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path or 'recipe'}: expected a mapping of fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in known:
            raise RecipeError(unknown_key_message(dotted, key, sorted(known)))
        kwargs[key] = convert(hints[key], value, dotted)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise RecipeError(f"{path or 'recipe'}: {exc}") from None


def unknown_key_message(dotted: str, key: str, allowed: list[str]) -> str:
    msg = f"unknown recipe key '{dotted}'"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        msg += f" — did you mean '{close[0]}'?"
    return msg + f" (allowed here: {', '.join(allowed)})"


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against type `tp`, converting where it is lossless (int → float)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, path)
            except RecipeError as exc:
                errors.append(str(exc))
        raise RecipeError(errors[0] if len(errors) == 1 else f"{path}: bad value {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"{path}: bad value {value!r}{hint} (allowed: {allowed})")
        return value
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise RecipeError(f"{path}: expected a list, got {value!r}")
        return [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        raise TypeError(f"recipe field type {tp!r} at {path} is not supported")
    raise RecipeError(f"{path}: bad value {value!r} (expected {tp.__name__})")


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain data (for YAML/JSON dumps and fingerprints)."""
    return dataclasses.asdict(obj)
