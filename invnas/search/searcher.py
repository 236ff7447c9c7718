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
  space, the repeat runs);
* its counters live in the searcher, which Tune snapshots together with the experiment state,
  so after a restore they agree with the trials Tune knows about: none counted twice.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from invnas.config import SearchConfig
from invnas.search.objectives import constraint_violations
from invnas.search.suggest import ARCH_KEY

log = logging.getLogger(__name__)

TUNE_TRIAL_ATTR = "tune_trial_id"
DUPLICATE_ATTR = "duplicate_of"
MAX_REPEATS = 20


class ArchSearcher(OptunaSearch):
    """:class:`OptunaSearch` with batched suggestions, a completed-trial budget and
    constraints, told to Optuna when ``tell_constraints`` (see the module docstring). Extra
    keyword arguments go to OptunaSearch."""

    def __init__(
        self,
        *,
        search: SearchConfig,
        target: int,
        batch_size: int,
        max_failures: int,
        tell_constraints: bool = True,
        **optuna_search_kwargs,
    ) -> None:
        super().__init__(**optuna_search_kwargs)
        self._search_config = search
        self._tell_constraints = tell_constraints
        self._target = target
        self._batch_size = max(1, batch_size)
        self._max_failures = max_failures
        self._in_flight: set[str] = set()
        self._batch_started = 0
        self._completed_count = 0
        self._failed_count = 0
        self._scored: dict[str, tuple[str, object, dict[str, float]]] = {}
        self._repeats_told = 0

    def __setstate__(self, state: dict) -> None:
        # searchers pickled by invnas versions before repeats were tracked lack these
        self.__dict__.update({"_scored": {}, "_repeats_told": 0}, **state)

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

    def suggest(self, trial_id: str):
        if self.too_many_failures or self._completed_count >= self._target:
            return Searcher.FINISHED if not self._in_flight else None
        if not self._in_flight:
            self._batch_started = 0
        if self._batch_started >= self._batch_size:
            return None
        if self._completed_count + len(self._in_flight) >= self._target:
            return None
        config = self._suggest_unscored(trial_id)
        self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        self._in_flight.add(trial_id)
        self._batch_started += 1
        return config

    def _suggest_unscored(self, trial_id: str) -> dict:
        """Optuna's next suggestion that no completed trial has scored yet (see the module
        docstring); each repeat on the way is told its known result."""
        for _ in range(MAX_REPEATS):
            config = super().suggest(trial_id)
            known = self._scored.get(config.get(ARCH_KEY))
            if known is None:
                return config
            first_trial_id, values, constraints = known
            repeat = self._ot_trials.pop(trial_id)
            repeat.set_user_attr(DUPLICATE_ATTR, first_trial_id)
            for name, violation in constraints.items():
                repeat.set_constraint(name, violation)
            self._ot_study.tell(repeat, values)
            self._repeats_told += 1
            log.info("%s was scored by trial %s; not run again", config[ARCH_KEY], first_trial_id)
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials:
            return
        self._in_flight.discard(trial_id)
        if result is None and not error:  # stopped before it reported (e.g. a pending trial)
            super().on_trial_complete(trial_id, None, error=False)
            return
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics] if result else None
        if error or not values or any(v is None for v in values):
            self._failed_count += 1
            log.info("search trial %s failed (%d so far)", trial_id, self._failed_count)
            super().on_trial_complete(trial_id, None, error=True)
            return
        self._completed_count += 1
        constraints = {}
        if self._tell_constraints:
            constraints = constraint_violations(self._search_config, result)
            for name, violation in constraints.items():
                self._ot_trials[trial_id].set_constraint(name, violation)
        arch = result.get(ARCH_KEY)
        if arch is not None and arch not in self._scored:
            told = values if isinstance(self.metric, list) else values[0]
            self._scored[arch] = (trial_id, told, constraints)
        super().on_trial_complete(trial_id, result, error=False)

    def restore(self, checkpoint_path: str) -> None:
        """Restore from a Tune snapshot, then mark FAIL the Optuna trials asked after that
        snapshot (they belong to Tune trials the restored experiment no longer knows, and
        would otherwise stay RUNNING in the journal forever)."""
        super().restore(checkpoint_path)
        known = {trial._trial_id for trial in self._ot_trials.values()}
        study = self._ot_study
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen._trial_id in known:
                continue
            log.info(
                "optuna trial %d was asked after the last snapshot; marking it FAIL", frozen.number
            )
            study._storage.set_trial_user_attr(frozen._trial_id, "abandoned", True)
            study._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
