"""AnomalyGate: stops a training run when ExampleValidator found anomalies of error severity.

The TFX component is ``driftguard.components.anomaly_gate.component.AnomalyGate``.
"""
