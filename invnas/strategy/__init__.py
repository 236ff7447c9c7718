"""How architectures are chosen, without Ray: Optuna samplers by name, the define-by-run
suggestion of an architecture, objectives and constraints, and Pareto ranking of trials."""
