"""PredictionMonitor: the serving model's predictions on a span, their drift, confidence and accuracy.

``metrics.py`` is the logic (numpy, scipy/scikit-learn, ``driftguard.components.drift``; no TensorFlow);
``component.py``/``executor.py`` are the TFX shell (the serving signature on batches in Beam -> PredictionLog).
"""
