"""The monitor's one exception."""


class MonitorError(Exception):
    """Something the user can fix: the message names the file, field or setting at fault."""
