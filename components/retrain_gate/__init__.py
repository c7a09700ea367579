"""RetrainGate: alert rules + retraining policy -> a decision with an int ``retrain`` property.

``policy.py`` is the logic (pure); ``component.py``/``executor.py`` the TFX shell.
"""
