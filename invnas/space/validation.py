"""Checking raw values (as ``yaml.safe_load`` gives them) against typed frozen dataclasses.

:class:`Validator` walks a dataclass's fields: their annotations (``int``, ``float`` (ints
accepted), ``bool`` (never an int), ``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]``,
nested dataclasses) and their ``metadata`` bounds (``min``, ``max``, ``exclusive_min``, ``odd``,
``unique: False`` for tuples that may repeat, ``aliases``: raw values accepted for others, as
``{True: "crop_flip"}``, and ``renamed_from``: a field's old key, still read). A tuple may be
given as a single value. Each failure is recorded as a :class:`Problem` with its key path, and
validation goes on, so one pass reports everything. Per-class cross-field checks plug in through
``checks``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Literal, Union

from invnas.space.errors import Problem, closest, describe, did_you_mean

INVALID = object()  # stands for a value that failed validation (its problems are recorded)


def join_path(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top level."""
    return f"{path}.{key}" if path else key


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _is_optional(tp: object) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _strip_optional(tp: object) -> object:
    if not _is_optional(tp):
        return tp
    (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
    return inner


def _bounds_text(meta: typing.Mapping) -> str:
    parts = []
    if "exclusive_min" in meta:
        parts.append(f"> {meta['exclusive_min']}")
    if "min" in meta and "max" in meta:
        parts.append(f"{meta['min']}..{meta['max']}")
    elif "min" in meta:
        parts.append(f">= {meta['min']}")
    elif "max" in meta:
        parts.append(f"<= {meta['max']}")
    return " and ".join(parts)


def _alias_of(raw: object, meta: typing.Mapping) -> object:
    """The value an alias in ``meta`` stands for, or INVALID (``True`` is no alias of ``1``)."""
    for alias, value in meta.get("aliases", {}).items():
        if type(raw) is type(alias) and raw == alias:
            return value
    return INVALID


def _yaml_text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _aliases_text(meta: typing.Mapping) -> str:
    aliases = meta.get("aliases", {})
    shown = ", ".join(f"{_yaml_text(a)} for {_yaml_text(v)}" for a, v in aliases.items())
    return f" (or {shown})" if shown else ""


def describe_type(tp: object, meta: typing.Mapping = types.MappingProxyType({})) -> str:
    """What a value of schema type ``tp`` (with ``meta`` bounds) must be, for messages."""
    return _describe(tp, meta) + _aliases_text(meta)


def _describe(tp: object, meta: typing.Mapping) -> str:
    tp = _strip_optional(tp)
    bounds = _bounds_text(meta)
    if tp is bool:
        return "true or false"
    if tp in (int, float):
        noun = "an odd integer" if meta.get("odd") else {int: "an integer", float: "a number"}[tp]
        return f"{noun} {bounds}".strip()
    if tp is str:
        return "a non-empty string"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item):
            return "a list of mappings"
        return f"a list of choices, each {_describe(item, meta)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    raise TypeError(f"schema type {tp!r} is not supported by the loader")


Check = Callable[["Validator", typing.Any, str], typing.Any]


class Validator:
    """Checks raw YAML values against schema types, recording a Problem for each failure."""

    def __init__(self, source: str, checks: Mapping[type, Check] | None = None) -> None:
        self.source = source
        self.checks = dict(checks or {})
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> object:
        self.problems.append(Problem(self.source, path, message))
        return INVALID

    def unknown_keys(self, raw: dict, allowed: tuple[str, ...], path: str) -> set[str]:
        """Record keys not in ``allowed``; return the allowed keys suggested for them."""
        suggested = set()
        for key in raw:
            if not isinstance(key, str):
                self.fail(
                    path, f"key {describe(key)} is not a string; allowed: {', '.join(allowed)}"
                )
            elif key not in allowed:
                match = closest(key, allowed)
                if match:
                    suggested.add(match)
                hint = f"did you mean {match!r}? " if match else ""
                self.fail(
                    join_path(path, key),
                    f"unknown key {key!r}; {hint}allowed: {', '.join(allowed)}",
                )
        return suggested

    def fields(self, cls: type, raw: dict, path: str, names, suggested=frozenset()) -> dict:
        """Validated values of the fields ``names`` of ``cls`` found in ``raw`` (bad ones left
        out); a missing required field is a problem unless an unknown key looked like it."""
        values = {}
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in names:
                continue
            key = f.name
            if key not in raw and f.metadata.get("renamed_from") in raw:
                key = f.metadata["renamed_from"]
            key_path = join_path(path, key)
            if key not in raw:
                if _required(f):
                    values[f.name] = INVALID
                    if f.name not in suggested:
                        expected = describe_type(hints[f.name], f.metadata)
                        self.fail(key_path, f"required key is missing; expected {expected}")
                continue
            values[f.name] = self.value(hints[f.name], raw[key], key_path, f.metadata)
        return values

    def dataclass(self, cls: type, raw: object, path: str) -> object:
        """An instance of ``cls`` from a mapping (null: all defaults), or INVALID."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return self.fail(path, f"got {describe(raw)}; expected {describe_type(cls)}")
        names = tuple(f.name for f in dataclasses.fields(cls))
        old = self._old_keys(cls, raw, path)
        suggested = self.unknown_keys({k: v for k, v in raw.items() if k not in old}, names, path)
        values = self.fields(cls, raw, path, names, suggested)
        if any(v is INVALID for v in values.values()):
            return INVALID
        obj = cls(**values)
        check = self.checks.get(cls)
        return check(self, obj, path) if check else obj

    def _old_keys(self, cls: type, raw: dict, path: str) -> set[str]:
        """The old keys (``renamed_from``) ``raw`` uses; both a key and its old one is a
        problem."""
        used = set()
        for f in dataclasses.fields(cls):
            old = f.metadata.get("renamed_from")
            if old in raw:
                used.add(old)
                if f.name in raw:
                    self.fail(
                        join_path(path, old),
                        f"the old name of {f.name!r}, which is also given; keep {f.name!r} only",
                    )
        return used

    def value(self, tp: object, raw: object, path: str, meta: typing.Mapping) -> object:
        """``raw`` checked against schema type ``tp`` and ``meta`` bounds, or INVALID."""
        alias = _alias_of(raw, meta)
        if alias is not INVALID:
            return alias
        if _is_optional(tp):
            inner = _strip_optional(tp)
            if raw is None and not dataclasses.is_dataclass(inner):
                return None
            return self.value(inner, raw, path, meta)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, raw, path)
        if raw is None:
            return self.fail(path, f"no value given; expected {describe_type(tp, meta)}")
        if typing.get_origin(tp) is tuple:
            return self.choices(typing.get_args(tp)[0], raw, path, meta)
        if typing.get_origin(tp) is Literal:
            allowed = typing.get_args(tp)
            if isinstance(raw, str) and raw in allowed:
                return raw
            hint = did_you_mean(raw, allowed) if isinstance(raw, str) else ""
            return self.fail(
                path, f"{describe(raw)} is not allowed; {hint}expected {describe_type(tp, meta)}"
            )
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            return self.fail(path, f"{describe(raw)} is not a boolean; expected true or false")
        if tp is str:
            if isinstance(raw, str) and raw:
                return raw
            wrong = "is empty" if raw == "" else "is not a string"
            return self.fail(path, f"{describe(raw)} {wrong}; expected a non-empty string")
        if tp in (int, float):
            return self.number(tp, raw, path, meta)
        raise TypeError(f"schema type {tp!r} at {path} is not supported by the loader")

    def number(self, tp: type, raw: object, path: str, meta: typing.Mapping) -> object:
        expected = describe_type(tp, meta)
        numeric = (int, float) if tp is float else (int,)
        if isinstance(raw, bool) or not isinstance(raw, numeric):
            kind = "an integer" if tp is int else "a number"
            return self.fail(path, f"{describe(raw)} is not {kind}; expected {expected}")
        if isinstance(raw, float) and not math.isfinite(raw):
            return self.fail(path, f"{describe(raw)} is not a finite number; expected {expected}")
        too_small = ("min" in meta and raw < meta["min"]) or (
            "exclusive_min" in meta and raw <= meta["exclusive_min"]
        )
        if too_small or ("max" in meta and raw > meta["max"]):
            size = "small" if too_small else "large"
            return self.fail(path, f"{describe(raw)} is too {size}; expected {expected}")
        if meta.get("odd") and raw % 2 == 0:
            even = f"{describe(raw)} is even, so padding k // 2 would be asymmetric"
            return self.fail(path, f"{even}; expected {expected}")
        if tp is float:
            try:
                return float(raw)
            except OverflowError:
                return self.fail(path, f"{describe(raw)} is too large; expected {expected}")
        return raw

    def choices(self, item_tp: object, raw: object, path: str, meta: typing.Mapping) -> object:
        is_list = isinstance(raw, list)
        if isinstance(raw, dict) or (dataclasses.is_dataclass(item_tp) and not is_list):
            return self.fail(
                path, f"got {describe(raw)}; expected {describe_type(tuple[item_tp, ...], meta)}"
            )
        items = raw if is_list else [raw]
        if not items:
            return self.fail(
                path, f"the list is empty; expected {describe_type(tuple[item_tp, ...], meta)}"
            )
        values = [
            self.value(item_tp, item, f"{path}[{i}]" if is_list else path, meta)
            for i, item in enumerate(items)
        ]
        if any(v is INVALID for v in values):
            return INVALID
        if meta.get("unique", True) and not dataclasses.is_dataclass(item_tp):
            first: dict[object, int] = {}
            for i, v in enumerate(values):
                if v in first:
                    self.fail(
                        f"{path}[{i}]",
                        f"{describe(items[i])} repeats {path}[{first[v]}]; list each choice once",
                    )
                first.setdefault(v, i)
            if len(first) < len(values):
                return INVALID
        return tuple(values)
