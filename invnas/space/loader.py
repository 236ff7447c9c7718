"""Reading a search-space YAML file into a validated :class:`SearchSpace` and, beside it, the
run's settings (:class:`~invnas.config.RunConfig`).

The schema is the dataclasses of :mod:`invnas.space.spec`: a generic walker checks a mapping
against a dataclass's fields (their type annotations and ``metadata`` bounds), then a few
cross-field checks run per class. Every problem is collected, so one run names all of them::

    space = load_space("search_spaces/quickstart.yaml")   # SpaceError (a ValueError) if bad
    space, run = load_space_file("search_spaces/quickstart.yaml")  # with the run's settings

Conventions of the file format:

- A choice list may be a single value: ``depth: 2`` means ``[2]``. Lists must be non-empty and
  must not repeat a choice.
- Top-level keys: ``name`` (default: the file name without extension), ``input``,
  ``num_classes``, ``stem``, ``stages``, and the run's sections ``data``, ``supernet``,
  ``search``, ``retrain``, ``resources``, ``seed`` (all optional).
- An op kind given without settings (``conv:`` or ``conv: {}``) takes its defaults.
- An involution with neither ``groups`` nor ``group_channels`` gets ``group_channels: [16]``,
  RedNet's 16 channels per group.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import re
from pathlib import Path
from typing import NamedTuple

import yaml

from invnas.config import PHOTO_DATASETS, DataConfig, RunConfig, SearchConfig
from invnas.space.errors import Problem, SpaceError, describe
from invnas.space.spec import (
    InputSpec,
    InvolutionSpace,
    OpChoice,
    OpSpace,
    SearchSpace,
    StageSpec,
    StemSpec,
)
from invnas.space.validation import INVALID, Check, Validator, join_path

DEFAULT_GROUP_CHANNELS = 16
_SPACE_KEYS = ("name", "input", "num_classes", "stem", "stages")
_RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig))
_NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SpaceFile(NamedTuple):
    """A space file as read: the architecture space and the run's settings beside it."""

    space: SearchSpace
    run: RunConfig


def load_space(path: str | Path) -> SearchSpace:
    """The architecture space of a search-space YAML file (see :func:`load_space_file`)."""
    return load_space_file(path).space


def parse_space(data: object, source: str = "<dict>") -> SearchSpace:
    """The architecture space of a mapping (see :func:`parse_space_file`)."""
    return parse_space_file(data, source).space


def load_space_file(path: str | Path) -> SpaceFile:
    """Read and validate a search-space YAML file: its space and its run's settings.

    Raises FileNotFoundError / IsADirectoryError for a path that is not a file, and
    :class:`SpaceError` (a ValueError) listing every problem of a file that is not a valid space.
    """
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; expected a YAML space file", source)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file; expected a YAML space file", source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        message = f"not UTF-8 text (bad byte at offset {err.start}); expected a YAML file"
        raise SpaceError([Problem(source, "", message)]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # SafeLoader that rejects duplicate keys
    except yaml.YAMLError as err:
        raise SpaceError([Problem(source, "", _yaml_message(err))]) from None
    except RecursionError:
        message = "invalid YAML: nested too deeply; expected a space file (a few levels deep)"
        raise SpaceError([Problem(source, "", message)]) from None
    return parse_space_file(data, source)


def parse_space_file(data: object, source: str = "<dict>") -> SpaceFile:
    """Validate a mapping (as ``yaml.safe_load`` gives it) into a :class:`SpaceFile`.

    ``source`` names where the mapping came from in messages; a file path there also gives the
    default ``name`` and becomes ``SearchSpace.source``.
    """
    walker = Validator(source, _CHECKS)
    from_file = not source.startswith("<")
    expected = f"a mapping with keys {', '.join(_SPACE_KEYS + _RUN_KEYS)}"
    if data is None:
        walker.fail("", f"the space is empty; expected {expected}")
    elif not isinstance(data, dict):
        walker.fail("", f"the top level is {describe(data)}; expected {expected}")
    else:
        parsed = _parse_top(walker, data, Path(source).stem if from_file else "space")
        if parsed is not None and not walker.problems:
            space = dataclasses.replace(parsed.space, source=source if from_file else None)
            return SpaceFile(space, parsed.run)
    raise SpaceError(walker.problems)


def _parse_top(walker: Validator, data: dict, default_name: str) -> SpaceFile | None:
    allowed = _SPACE_KEYS + _RUN_KEYS
    suggested = walker.unknown_keys(data, allowed, "")
    space_part = {k: v for k, v in data.items() if k in _SPACE_KEYS}
    run_part = {k: v for k, v in data.items() if k in _RUN_KEYS}
    values = walker.fields(SearchSpace, space_part, "", _SPACE_KEYS[1:], suggested)
    run = walker.dataclass(RunConfig, run_part, "")
    name = walker.value(str, data.get("name", _usable_name(default_name)), "name", {})
    if isinstance(name, str) and not _NAME_RULE.fullmatch(name):
        walker.fail(
            "name",
            f"{describe(name)} cannot name a run directory; allowed: letters, digits, '_', '.' "
            "and '-', starting with a letter or digit",
        )
    _check_stage_names(walker, data.get("stages"))
    stages = values.get("stages", INVALID)
    if stages is not INVALID:
        if all(values.get(k, INVALID) is not INVALID for k in ("input", "stem")):
            _check_spatial_sizes(walker, values["input"], values["stem"], stages)
    named = isinstance(data.get("data"), dict) and "dataset" in data["data"]
    if named and all(v is not INVALID for v in (run, values["input"], values["num_classes"])):
        _check_dataset_shape(walker, run.data, values["input"], values["num_classes"])
    if walker.problems:
        return None
    return SpaceFile(SearchSpace(name=name, **values), run)


def _usable_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-") or "space"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reports a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 (PyYAML hook)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: SafeLoader reports it itself
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; give each key once", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _yaml_message(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is None:
        return f"invalid YAML: {problem}"
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    if problem.startswith("duplicate key"):
        return f"{where}: {problem}"
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    if isinstance(err, yaml.constructor.ConstructorError):
        return f"invalid YAML at {where}: {problem}; expected plain YAML data (no tags)"
    return f"invalid YAML at {where}: {problem}; expected valid YAML syntax"


def _check_involution(walker: Validator, inv: InvolutionSpace, path: str) -> InvolutionSpace:
    if inv.groups is not None and inv.group_channels is not None:
        walker.fail(
            join_path(path, "group_channels"),
            "given together with groups; give either groups (kernel groups) or group_channels "
            "(channels per group), not both",
        )
    if inv.groups is None and inv.group_channels is None:
        return dataclasses.replace(inv, group_channels=(DEFAULT_GROUP_CHANNELS,))
    return inv


def _check_ops(walker: Validator, ops: OpSpace, path: str) -> OpSpace:
    if ops.conv is None and ops.involution is None:
        walker.fail(path, "no op kinds; expected conv, involution or both")
    return ops


def _check_stem(walker: Validator, stem: StemSpec, path: str) -> StemSpec:
    if stem.kind == "rednet" and stem.channels % (2 * DEFAULT_GROUP_CHANNELS):
        walker.fail(
            join_path(path, "channels"),
            f"{stem.channels} does not suit the rednet stem, whose involution runs on half the "
            f"channels with {DEFAULT_GROUP_CHANNELS} per group; expected a multiple of "
            f"{2 * DEFAULT_GROUP_CHANNELS}",
        )
    return stem


def _check_divides(walker: Validator, path: str, label: str, divisors, stage: StageSpec) -> None:
    """Every value of ``divisors`` must divide the op channels of every width of ``stage``."""
    inner = [stage.inner_width(w) for w in stage.width]
    common = math.gcd(*inner)
    allowed = [d for d in range(1, common + 1) if common % d == 0]
    for i, d in enumerate(divisors or ()):
        bad = [(w, c) for w, c in zip(stage.width, inner, strict=True) if c % d]
        if bad:
            w, c = bad[0]
            seen = f"width {w} // expansion {stage.expansion}" if c != w else f"width {w}"
            walker.fail(
                f"{path}[{i}]",
                f"{label} {d} does not divide the op's {c} channels ({seen}); allowed: "
                f"divisors of every op width: {', '.join(map(str, allowed))}",
            )


def _check_stage(walker: Validator, stage: StageSpec, path: str) -> StageSpec:
    if stage.block == "bottleneck":
        uneven = [(i, w) for i, w in enumerate(stage.width) if w % stage.expansion]
        for i, w in uneven:
            walker.fail(
                f"{path}.width[{i}]",
                f"{w} is not divisible by expansion {stage.expansion}; a bottleneck width "
                "must be a multiple of its expansion",
            )
        if uneven:
            return stage  # the op widths below would be meaningless
    ops_path = f"{path}.ops"
    if stage.ops.conv is not None:
        _check_divides(walker, f"{ops_path}.conv.groups", "groups", stage.ops.conv.groups, stage)
    inv = stage.ops.involution
    if inv is not None:
        inv_path = f"{ops_path}.involution"
        _check_divides(walker, f"{inv_path}.groups", "groups", inv.groups, stage)
        _check_divides(
            walker, f"{inv_path}.group_channels", "group_channels", inv.group_channels, stage
        )
        narrowest = min(stage.inner_width(w) for w in stage.width)
        for i, r in enumerate(inv.reduction):
            if r > narrowest:
                walker.fail(
                    f"{inv_path}.reduction[{i}]",
                    f"{r} leaves no channels for the kernel generator on the op's {narrowest} "
                    f"channels; expected 1..{narrowest}",
                )
    if stage.blocks is not None:
        _check_blocks(walker, stage, f"{path}.blocks")
    return stage


def _check_blocks(walker: Validator, stage: StageSpec, path: str) -> None:
    if len(stage.depth) != 1:
        walker.fail(
            path,
            f"pins the ops of one depth, but depth has {len(stage.depth)} choices; expected a "
            "single depth",
        )
    elif stage.depth[0] != len(stage.blocks):
        walker.fail(
            path,
            f"{len(stage.blocks)} op codes for depth {stage.depth[0]}; expected one per block",
        )
    allowed = [op.code for op in stage.ops.candidates()]
    for i, code in enumerate(stage.blocks):
        if code not in allowed:
            try:
                OpChoice.from_code(code)
                wrong = "is not among the stage's ops"
            except ValueError:
                wrong = "is not an op code"
            walker.fail(f"{path}[{i}]", f"{code!r} {wrong}; allowed: {', '.join(allowed)}")


def _check_search(walker: Validator, search: SearchConfig, path: str) -> SearchConfig:
    if search.sampler == "cmaes" and len(search.objectives) > 1:
        walker.fail(
            join_path(path, "sampler"),
            f"cmaes is single-objective but search.objectives has {len(search.objectives)} "
            f"({', '.join(search.objectives)}); use tpe, nsga2, nsga3, gp, random or qmc for "
            "several objectives",
        )
    return search


def _check_data(walker: Validator, data: DataConfig, path: str) -> DataConfig:
    if data.dataset in ("mnist", "cifar10", "cifar100", "imagefolder") and data.path is None:
        walker.fail(
            join_path(path, "path"),
            f"required key is missing: data.dataset {data.dataset!r} reads its images from "
            "data.path; expected the dataset's folder",
        )
    if data.val_fraction + data.test_fraction >= 1:
        walker.fail(
            join_path(path, "test_fraction"),
            f"val_fraction + test_fraction is {data.val_fraction + data.test_fraction}, leaving "
            "no training images; expected a sum below 1",
        )
    if data.augment == "photo" and data.dataset not in PHOTO_DATASETS:
        walker.fail(
            join_path(path, "augment"),
            f"'photo' is for datasets of photographs ({', '.join(PHOTO_DATASETS)}), not "
            f"{data.dataset!r}; expected 'none' or 'crop_flip'",
        )
    return data


# channels the images of a built-in dataset may be presented with, and its number of classes
# (None: read from the files; checked when the file names its dataset; architecture-only
# files leave the default alone)
_DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int | None]] = {
    "digits": ((1, 3), 10),
    "fashion_mnist": ((1, 3), 10),
    "mnist": ((1, 3), None),
    "cifar10": ((3,), 10),
    "cifar100": ((3,), 100),
}


def _check_dataset_shape(walker: Validator, data: DataConfig, inp: InputSpec, classes: int):
    if data.dataset not in _DATASET_SHAPES:
        return
    channels, expected = _DATASET_SHAPES[data.dataset]
    if inp.channels not in channels:
        allowed = " or ".join(map(str, channels))
        walker.fail(
            "input.channels",
            f"{inp.channels} does not fit data.dataset {data.dataset!r}; expected {allowed}",
        )
    if expected is not None and classes != expected:
        walker.fail(
            "num_classes",
            f"{classes} does not fit data.dataset {data.dataset!r}, which has {expected} "
            f"classes; expected {expected}",
        )


def _check_stage_names(walker: Validator, stages: object) -> None:
    """Stage names must be unique (checked on the raw list, so that other problems in the
    stages do not hide this one)."""
    first: dict[str, int] = {}
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        name = stage.get("name") if isinstance(stage, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            walker.fail(
                f"stages[{i}].name",
                f"{name!r} is already the name of stages[{first[name]}]; "
                "expected unique stage names",
            )
        first.setdefault(name, i)


def _check_spatial_sizes(walker: Validator, inp: InputSpec, stem: StemSpec, stages) -> None:
    """Every stride needs a feature map at least as large as itself (padding is k // 2, so a
    stride s turns n into ceil(n / s))."""
    size, trail = inp.size, [f"input {inp.size}"]
    if stem.kind == "conv":
        steps = [("stem.stride", "stem", stem.stride)]
        steps += [("stem.pool", "pool", 2)] if stem.pool else []
    else:  # resnet and rednet stems: a stride-2 conv and a stride-2 max-pool
        steps = [("stem.kind", "stem", 2), ("stem.kind", "pool", 2)]
    steps += [(f"stages[{i}].stride", s.name, s.stride) for i, s in enumerate(stages)]
    for where, label, stride in steps:
        if stride > 1 and size < stride:
            walker.fail(
                where,
                f"stride {stride} on a {size}x{size} feature map ({', '.join(trail)}); "
                "expected a larger input.size or fewer strides",
            )
            return
        size = -(-size // stride)
        trail.append(f"{label} {size}")


_CHECKS: dict[type, Check] = {
    InvolutionSpace: _check_involution,
    OpSpace: _check_ops,
    StemSpec: _check_stem,
    StageSpec: _check_stage,
    SearchConfig: _check_search,
    DataConfig: _check_data,
}
