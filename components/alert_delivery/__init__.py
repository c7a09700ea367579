"""AlertDelivery: queues the RetrainGate's alerts in the outbox and delivers them.

``delivery.py`` is the logic (no TFX import); ``component.py``/``executor.py`` the TFX shell.
"""
