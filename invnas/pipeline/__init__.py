"""The run as Ray Tune experiments: the three phases (thin adapters around :mod:`invnas.engine`),
the Optuna searcher, the local or cluster Ray session, progress, and the driver that runs the
phases in order and resumes them (:func:`invnas.pipeline.driver.run_search`)."""
