"""driftguard pipelines, configuration and CLI."""
