"""The search phase's Tune searcher: Optuna suggestions in reproducible batches, a trial budget
counted in *completed* trials, constraints handed to Optuna, and clean restores.

Tune runs the search with ``num_samples=-1``; this searcher decides when it is over:

* it suggests in batches of ``batch_size`` and waits for a whole batch to finish before asking
  Optuna again, so the suggestions depend only on results, never on which trial finished
  first (same seed, same architectures);
* a failed trial does not use up the budget: the search goes on until ``target`` trials have
  completed, unless more than ``max_failures`` have failed;
* an architecture that a completed trial already scored is not run again: Optuna is told the
  known result at once (the Optuna trial gets the user attribute ``duplicate_of``) and asked
  for another, up to ``MAX_REPEATS`` times per trial (after that, on a small or exhausted
  space, the repeat runs); one that a trial in flight is scoring is not run twice either: the
  repeat is held and told that trial's result when it ends (FAIL if it fails);
* its counters live in the searcher, which Tune snapshots together with the experiment state,
  so after a restore they agree with the trials Tune knows about: none counted twice; the
  Optuna trials asked after the snapshot are told FAIL and listed in the study's user
  attribute ``abandoned``, so that none stays RUNNING.

It is built on public interfaces only: Tune's :class:`~ray.tune.search.Searcher` and Optuna's
ask-and-tell API (``study.ask`` / ``study.tell``, ``Trial.set_constraint``).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from invnas.config import SearchConfig
from invnas.strategy.objectives import constraint_violations
from invnas.strategy.suggest import ARCH_KEY

log = logging.getLogger(__name__)

TUNE_TRIAL_ATTR = "tune_trial_id"
DUPLICATE_ATTR = "duplicate_of"
ABANDONED_ATTR = "abandoned"
MAX_REPEATS = 20

# What a snapshot holds: the study (with its sampler and the sampler's random state), the
# Optuna trials of the Tune trials in flight, and the counters.
_SNAPSHOT = (
    "_study",
    "_asked",
    "_batch_started",
    "_completed_count",
    "_failed_count",
    "_scored",
    "_repeats_told",
    "_arch_in_flight",
    "_held",
)


class ArchSearcher(Searcher):
    """Suggests architectures from an Optuna study, asked with the define-by-run ``space``
    (called on each asked :class:`optuna.Trial`; module-level or a ``functools.partial`` of
    one, since Tune pickles the searcher), in batches, with a completed-trial budget and
    constraints told to Optuna when ``tell_constraints`` (see the module docstring).

    ``metric`` and ``mode`` name the objectives in order (``"max"`` / ``"min"``); the study
    ``study_name`` is created in ``storage`` (in memory when None) or loaded if it exists.
    """

    def __init__(
        self,
        *,
        space: Callable[[optuna.Trial], dict[str, Any] | None],
        metric: Sequence[str],
        mode: Sequence[str],
        sampler: optuna.samplers.BaseSampler,
        search: SearchConfig,
        target: int,
        batch_size: int,
        max_failures: int,
        tell_constraints: bool = True,
        storage: optuna.storages.BaseStorage | None = None,
        study_name: str = "optuna",
    ) -> None:
        if len(metric) != len(mode):
            raise ValueError(f"metric {list(metric)} and mode {list(mode)} differ in length")
        super().__init__(metric=list(metric), mode=list(mode))
        self._space = space
        self._search_config = search
        self._tell_constraints = tell_constraints
        self._target = target
        self._batch_size = max(1, batch_size)
        self._max_failures = max_failures
        self._study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=optuna.pruners.NopPruner(),
            study_name=study_name,
            load_if_exists=True,
            directions=["maximize" if m == "max" else "minimize" for m in mode],
        )
        self._asked: dict[str, optuna.Trial] = {}  # Tune trial id -> its Optuna trial, in flight
        self._batch_started = 0
        self._completed_count = 0
        self._failed_count = 0
        self._scored: dict[str, tuple[str, list[float], dict[str, float]]] = {}
        self._repeats_told = 0
        self._arch_in_flight: dict[str, str] = {}  # Tune trial id -> the architecture it scores
        self._held: dict[str, list[optuna.Trial]] = {}  # Tune trial id -> repeats waiting on it

    @property
    def study(self) -> optuna.Study:
        """The Optuna study the suggestions come from."""
        return self._study

    @property
    def completed(self) -> int:
        return self._completed_count

    @property
    def failed(self) -> int:
        return self._failed_count

    @property
    def repeats_told(self) -> int:
        """Suggestions of already-scored architectures answered without a trial."""
        return self._repeats_told

    @property
    def too_many_failures(self) -> bool:
        return self._failed_count > self._max_failures

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next architecture's config, None to wait for the batch, or FINISHED."""
        if self.too_many_failures or self._completed_count >= self._target:
            return Searcher.FINISHED if not self._asked else None
        if not self._asked:
            self._batch_started = 0
        if self._batch_started >= self._batch_size:
            return None
        if self._completed_count + len(self._asked) >= self._target:
            return None
        trial, config = self._ask_unscored()
        trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        self._asked[trial_id] = trial
        if config.get(ARCH_KEY) is not None:
            self._arch_in_flight[trial_id] = config[ARCH_KEY]
        self._batch_started += 1
        return config

    def _ask(self) -> tuple[optuna.Trial, dict[str, Any]]:
        """A new Optuna trial and the config ``space`` chose on it (its parameters included,
        as OptunaSearch returns them)."""
        trial = self._study.ask()
        chosen = self._space(trial) or {}
        return trial, {**trial.params, **chosen}

    def _ask_unscored(self) -> tuple[optuna.Trial, dict[str, Any]]:
        """Optuna's next suggestion that no trial has scored or is scoring (see the module
        docstring); each repeat on the way is told its known result, or held for it."""
        for _ in range(MAX_REPEATS):
            trial, config = self._ask()
            arch = config.get(ARCH_KEY)
            known = self._scored.get(arch)
            scoring = [tid for tid, running in self._arch_in_flight.items() if running == arch]
            if known is not None:
                first_trial_id, values, constraints = known
                self._tell_repeat(trial, first_trial_id, values, constraints)
                log.info("%s was scored by trial %s; not run again", arch, first_trial_id)
            elif scoring:
                self._held.setdefault(scoring[0], []).append(trial)
                log.info("%s is being scored by trial %s; held for its result", arch, scoring[0])
            else:
                return trial, config
        return self._ask()

    def _tell_repeat(
        self,
        trial: optuna.Trial,
        first_trial_id: str,
        values: list[float],
        constraints: dict[str, float],
    ) -> None:
        trial.set_user_attr(DUPLICATE_ATTR, first_trial_id)
        self._tell(trial, TrialState.COMPLETE, values, constraints)
        self._repeats_told += 1

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Count how the Tune trial ended and tell Optuna (once, however often called)."""
        trial = self._asked.pop(trial_id, None)
        if trial is None:
            return
        self._arch_in_flight.pop(trial_id, None)
        held = self._held.pop(trial_id, [])
        values = [result.get(m) for m in self.metric] if result else None
        if result is None and not error:  # stopped before it reported (e.g. a pending trial)
            for repeat in (trial, *held):
                self._tell(repeat, TrialState.PRUNED)
        elif error or not values or any(v is None for v in values):
            self._failed_count += 1
            log.info("search trial %s failed (%d so far)", trial_id, self._failed_count)
            for repeat in (trial, *held):
                self._tell(repeat, TrialState.FAIL)
        else:
            self._completed_count += 1
            constraints = {}
            if self._tell_constraints:
                constraints = constraint_violations(self._search_config, result)
            arch = result.get(ARCH_KEY)
            if self._tell(trial, TrialState.COMPLETE, values, constraints) and arch is not None:
                self._scored.setdefault(arch, (trial_id, values, constraints))
            for repeat in held:
                self._tell_repeat(repeat, trial_id, values, constraints)

    def _tell(
        self,
        trial: optuna.Trial,
        state: TrialState,
        values: list[float] | None = None,
        constraints: dict[str, float] | None = None,
    ) -> bool:
        """Tell Optuna how ``trial`` ended; True when it stands COMPLETE (False also when
        Optuna refused the values, e.g. NaN, and failed it). A trial already finished, told
        by a driver that died after the last snapshot (Tune then runs it again), stays as
        it was told."""
        frozen = self._study.get_trials(deepcopy=False)[trial.number]
        if frozen.state.is_finished():
            log.info("optuna trial %d was told before the restore; kept as told", trial.number)
        else:
            for name, violation in (constraints or {}).items():
                trial.set_constraint(name, violation)
            complete = state == TrialState.COMPLETE  # Optuna decides whether values are valid
            frozen = self._study.tell(trial, values, state=None if complete else state)
        return frozen.state == TrialState.COMPLETE

    def save(self, checkpoint_path: str) -> None:
        """Pickle the study (its sampler's random state with it), the trials in flight and
        the counters; Tune calls it at every experiment snapshot."""
        with open(checkpoint_path, "wb") as file:
            pickle.dump({key: getattr(self, key) for key in _SNAPSHOT}, file)

    def restore(self, checkpoint_path: str) -> None:
        """Restore from a Tune snapshot, then tell FAIL the Optuna trials asked after that
        snapshot (they belong to Tune trials the restored experiment no longer knows, and
        would otherwise stay RUNNING in the journal forever)."""
        with open(checkpoint_path, "rb") as file:
            state = _upgrade(pickle.load(file))
        for key in _SNAPSHOT:
            setattr(self, key, state[key])
        waiting = [trial for trials in self._held.values() for trial in trials]
        in_flight = {trial.number for trial in (*self._asked.values(), *waiting)}
        running = self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        lost = [t.number for t in running if t.number not in in_flight]
        for number in lost:
            log.info("optuna trial %d was asked after the last snapshot; marking it FAIL", number)
            self._study.tell(number, state=TrialState.FAIL)
        if lost:
            earlier = self._study.user_attrs.get(ABANDONED_ATTR, [])
            self._study.set_user_attr(ABANDONED_ATTR, sorted({*earlier, *lost}))


def _upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot in the current form, also from invnas versions whose searcher subclassed
    OptunaSearch (its whole ``__dict__``: the study, every Tune trial's Optuna trial, the
    ids in flight) or did not yet track repeats."""
    if "_ot_study" in state:
        asked = {tid: state["_ot_trials"][tid] for tid in sorted(state["_in_flight"])}
        state = {**state, "_study": state["_ot_study"], "_asked": asked}
    return {"_scored": {}, "_repeats_told": 0, "_arch_in_flight": {}, "_held": {}, **state}
