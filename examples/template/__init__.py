"""The project template `driftguard init DIR` copies: a generic tabular model and a config to fill in."""
