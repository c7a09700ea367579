"""Does the drift matter to the model? Pure functions over numpy/Arrow, no TFX, no TensorFlow.

- :mod:`.importance`: permutation importance of a model version's features on its labelled
  reference rows, computed once when the version is pushed (``profile/feature_importance.json``);
- :mod:`.weighted`: a span's per-feature drift weighted by that importance, and the features
  that drifted *and* matter;
- :mod:`.effect`: the estimated change of the model's metric on the current data, by
  re-weighting the reference's labelled rows with the density ratio p_current(x)/p_reference(x)
  of a domain classifier, with a bootstrap standard error and the effective sample size.

- :mod:`.report`: those changes beside CBPE's (or DLE's) and the realized one, for people.

The ``impact`` retraining policy (``components/retrain_gate/policy.py``) acts on the estimate.
"""
