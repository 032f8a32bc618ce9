"""Testing versions on live traffic: routing policies and experiment statistics.

A pure layer (only :mod:`modelyard.errors` below it, plus NumPy and SciPy): it decides
nothing by itself about servers or databases.

- :mod:`modelyard.experiments.policy`: the routing policy of one model name (shadow,
  canary, fallback, composite), sticky bucketing, the canary's rollback rule and the
  composite's weighted combination;
- :mod:`modelyard.experiments.stats`: the A/B test's sequential test (mSPRT) and sample
  size, the Thompson-sampling bandit, team-draft interleaving and its preference test.

The registry stores policies (:mod:`modelyard.registry.routing`); the server follows
them (:mod:`modelyard.serving.routing`).
"""
