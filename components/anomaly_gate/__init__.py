"""AnomalyGate: stops a training run when ExampleValidator found anomalies of error severity."""
from components.anomaly_gate.component import AnomalyGate

__all__ = ["AnomalyGate"]
