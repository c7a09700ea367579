"""DriftDetector: a span's examples against the serving model's baseline profile.

``compare.py`` holds the logic (no TFX); ``component.py``/``executor.py`` are the TFX shell.
Import the component from ``driftguard.components.drift_detector.component`` (this package stays light).
"""
