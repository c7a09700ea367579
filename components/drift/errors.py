"""Exceptions raised by :mod:`driftguard.components.drift`.

All input problems raise :class:`DriftInputError`, a :class:`ValueError`, so callers
that already catch ``ValueError`` keep working, while the CLI can tell a bad input
(exit status 2) from a bug.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["DriftInputError"]


class DriftInputError(ValueError):
    """An input table or column cannot be compared.

    Parameters
    ----------
    message : str
        What was wrong and what is allowed.
    column : str, optional
        The offending column, when there is one.
    side : {"reference", "current"}, optional
        Which input holds the problem, when it is one side only.

    Examples
    --------
    >>> err = DriftInputError("column 'fare' holds 2 infinite values", column="fare", side="current")
    >>> isinstance(err, ValueError), err.column, err.side
    (True, 'fare', 'current')
    """

    def __init__(self, message: str, *, column: Optional[str] = None, side: Optional[str] = None):
        super().__init__(message)
        self.column = column
        self.side = side
