"""ExampleGen executors of driftguard (input formats TFX's own executors misread)."""
