"""``run.json``: how a run was started (name, time, version, seed, command-line overrides, where
it runs and where its data lives), so that resume and export compute exactly what it computed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from invnas.config import RunConfig
from invnas.space.serialize import space_to_dict
from invnas.space.spec import SearchSpace


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that replaced the space file's (None: the file's value holds)."""

    seed: int | None = None
    trials: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    train_workers: int | None = None
    address: str | None = None
    storage: str | None = None

    def apply(self, config: RunConfig) -> RunConfig:
        """``config`` with these overrides."""
        search = config.search
        if self.trials is not None:
            search = dataclasses.replace(search, trials=self.trials)
        resource_keys = ("cpus_per_trial", "gpus_per_trial", "train_workers", "address", "storage")
        given = {key: getattr(self, key) for key in resource_keys if getattr(self, key) is not None}
        return dataclasses.replace(
            config,
            search=search,
            resources=dataclasses.replace(config.resources, **given),
            seed=config.seed if self.seed is None else self.seed,
        )

    def to_json(self) -> dict[str, Any]:
        """The overrides that are set, by name."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: object, source: str) -> Overrides:
        """Read :meth:`to_json` output; ValueError naming ``source`` when it is not."""
        if not isinstance(data, dict) or set(data) - {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(
                f"{source}: overrides: {data!r}; expected an object with keys among "
                f"{', '.join(f.name for f in dataclasses.fields(cls))}"
            )
        return cls(**data)


DIGEST_SECTIONS = ("network", "data", "supernet", "search", "retrain", "seed")


def settings_digest(space: SearchSpace, config: RunConfig) -> dict[str, str]:
    """A short hash of the canonical form of each part of a space file that decides what a run
    computes: the network (input, classes, stem, stages) and the run's sections but
    ``resources`` (where it runs)."""
    plain = space_to_dict(space, config)
    network = {key: plain[key] for key in ("input", "num_classes", "stem", "stages")}
    parts = {"network": network, **{key: plain[key] for key in DIGEST_SECTIONS[1:]}}
    return {
        key: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
        for key, value in parts.items()
    }


def check_same_settings(
    recorded: dict[str, str] | None, space: SearchSpace, config: RunConfig, where: str
) -> None:
    """ValueError naming ``where`` and the parts that differ when ``space`` and ``config`` do
    not compute what the run recorded (``recorded`` None: a run from before digests)."""
    if recorded is None:
        return
    now = settings_digest(space, config)
    changed = [key for key, value in recorded.items() if now.get(key) != value]
    if changed:
        raise ValueError(
            f"{where}: {', '.join(changed)} differ from the space the run was started with; a "
            "run resumes only with its own settings: undo the edit, or start a new run"
        )


@dataclass(frozen=True)
class RunInfo:
    """The contents of ``run.json``: ``data_root`` is the directory a relative ``data.path``
    is taken from (the space file's, when the run started)."""

    name: str
    created: str
    seed: int
    invnas_version: str | None = None
    overrides: Overrides = Overrides()
    storage: str | None = None
    address: str | None = None
    space_source: str | None = None
    data_root: str | None = None
    settings_digest: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        plain = dataclasses.asdict(self)
        plain["overrides"] = self.overrides.to_json()
        return plain

    @classmethod
    def from_json(cls, data: object, source: str = "run.json") -> RunInfo:
        """Read :meth:`to_json` output; ValueError naming ``source`` and the missing key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: holds {type(data).__name__}; expected a JSON object")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif f.default is dataclasses.MISSING:
                raise ValueError(f"{source}: {f.name}: missing; the run's record is incomplete")
        values["overrides"] = Overrides.from_json(data.get("overrides") or {}, source)
        return cls(**values)
