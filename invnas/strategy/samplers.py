"""Optuna samplers by name, seeded, sized for the search's trial budget.

Example::

    sampler = make_sampler("nsga2", n_objectives=2, trials=32, seed=0)

Constraints reach the samplers that support them (tpe, nsga2, nsga3, gp) through
``Trial.set_constraint``, which the search's searcher calls before telling a result.
"""

from __future__ import annotations

import optuna

SAMPLERS = ("tpe", "nsga2", "nsga3", "gp", "random", "qmc", "cmaes")
# Samplers that model categorical parameters; the others get an op's index as an integer.
CATEGORICAL_SAMPLERS = frozenset({"tpe", "nsga2", "nsga3", "gp", "random"})


CONSTRAINED_SAMPLERS = frozenset({"tpe", "nsga2", "nsga3", "gp"})


def uses_constraints(name: str) -> bool:
    """True when sampler ``name`` takes constraints into account."""
    return name in CONSTRAINED_SAMPLERS


def uses_categorical(name: str) -> bool:
    """True when sampler ``name`` suggests ops as categorical values rather than indices."""
    return name in CATEGORICAL_SAMPLERS


def make_sampler(
    name: str, *, n_objectives: int, trials: int, seed: int
) -> optuna.samplers.BaseSampler:
    """The seeded Optuna sampler called ``name`` (one of :data:`SAMPLERS`).

    Start-up (random) phases and population sizes shrink with the budget, so that a search of
    a few dozen trials still spends most of them on the sampler's model. ValueError for an
    unknown name and for cmaes with several objectives.
    """
    startup = max(4, min(10, trials // 3))
    population = max(4, min(50, trials // 4))
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=population)
    if name == "gp":
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=startup,
            warn_independent_sampling=False,
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_asynchronous_seeding=False)
    if name == "cmaes":
        if n_objectives != 1:
            raise ValueError(
                f"search.sampler: cmaes is single-objective but {n_objectives} objectives are "
                "set; use tpe, nsga2, nsga3, gp, random or qmc for several objectives"
            )
        try:
            import cmaes  # noqa: F401  (Optuna imports it lazily, at the first CMA-ES step)
        except ImportError:
            raise ValueError(
                "search.sampler: cmaes needs the 'cmaes' package; install it with "
                "`pip install cmaes` or choose another sampler"
            ) from None
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    raise ValueError(f"search.sampler: {name!r} is not a sampler; allowed: {', '.join(SAMPLERS)}")
