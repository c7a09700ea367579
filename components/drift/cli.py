"""``driftguard drift REFERENCE CURRENT [--json]``: compare two tables from the command line.

Registered on the main ``driftguard`` group with ``group.add_command(drift)``; also
runnable alone as ``python -m driftguard.components.drift.cli REFERENCE CURRENT``.

Files are CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``), chosen by
extension, read with pyarrow (empty CSV fields are missing values; index columns that
pandas stored in a Parquet file are dropped). Exit status:
0 no drift, 1 drift, 2 error (message on stderr naming the file and the column).

Only numpy, scipy.special, pyarrow and click are imported (no TensorFlow, TFX or pandas),
plus scikit-learn for the domain classifier (``--no-classifier`` skips it and its import),
so a 2,000-row comparison takes one to two seconds including start-up.
"""
from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

import click

from .detect import DEFAULT_ALPHA, detect_drift
from .errors import DriftInputError

__all__ = ["drift", "read_file", "EXIT_NO_DRIFT", "EXIT_DRIFT", "EXIT_ERROR"]

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
_CSV = (".csv", ".csv.gz")
_PARQUET = (".parquet", ".pq")


class FileReadError(Exception):
    """A file cannot be read as a table."""


def _drop_pandas_index(table):
    """Drop the index columns pandas stores in Parquet (``__index_level_0__``): they are not data."""
    metadata = table.schema.metadata or {}
    try:
        index = json.loads(metadata[b"pandas"]).get("index_columns", [])
    except (KeyError, ValueError, AttributeError):
        return table
    names = [c for c in index if isinstance(c, str) and c in table.column_names]
    return table.drop(names) if names else table


def read_file(path: str):
    """Read a CSV or Parquet file into a :class:`pyarrow.Table` (by extension).

    Raises
    ------
    FileReadError
        Unknown extension, or the file is not a readable table; the message names it.
    """
    lower = path.lower()
    try:
        if lower.endswith(_CSV):
            import pyarrow.csv as pa_csv

            return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=True))
        if lower.endswith(_PARQUET):
            import pyarrow.parquet as pa_parquet

            # ParquetFile.read, not read_table: the latter goes through pyarrow.dataset and imports
            # pandas (about 2 s of start-up); a single file is all the command takes.
            return _drop_pandas_index(pa_parquet.ParquetFile(path).read())
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... with its own message
        raise FileReadError(f"cannot read {path!r} as a table: {str(exc).strip()}") from exc
    raise FileReadError(f"unsupported file type for {path!r}; use one of {', '.join(_CSV + _PARQUET)}")


def _fail(message: str) -> None:
    click.echo(f"driftguard drift: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.command("drift")
@click.argument("reference", type=click.Path(exists=True, dir_okay=False))
@click.argument("current", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--exclude", multiple=True, metavar="COLUMN", help="Column to leave out (repeatable), e.g. the label.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=DEFAULT_ALPHA,
              show_default=True, help="Family-wise significance level over all feature checks.")
@click.option("--no-multivariate", is_flag=True, help="Skip the joint (rank-correlation) check.")
@click.option("--no-classifier", is_flag=True,
              help="Skip the domain-classifier check (gradient-boosted trees telling the tables apart).")
@click.option("--explain/--no-explain", default=None,
              help="Explain the classifier's verdict (separating features, changed segments); "
                   "default: only when drift is found.")
def drift(reference: str, current: str, as_json: bool, exclude: Sequence[str], alpha: float,
          no_multivariate: bool, no_classifier: bool, explain: Optional[bool]) -> None:
    """Compare CURRENT with REFERENCE (CSV or Parquet, same columns) and report drift.

    A feature drifts when its Holm-adjusted p-value is at most ALPHA and its effect size
    passes its threshold (default: PSI >= 0.005, missing rate +-5 points, 2% unseen
    categories); the table drifts when any feature does or a joint check fires (the
    Spearman pairs, or the domain classifier: cross-fitted AUC >= 0.52 at adjusted p <= 0.01).

    Exit status: 0 no drift, 1 drift, 2 error.
    """
    paths = {"reference": reference, "current": current}
    tables = {}
    for side, path in paths.items():
        try:
            tables[side] = read_file(path)
        except FileReadError as exc:
            _fail(f"{side} file: {exc}")
    try:
        report = detect_drift(tables["reference"], tables["current"], exclude=list(exclude), alpha=alpha,
                              multivariate=not no_multivariate, classifier=not no_classifier, explain=explain)
    except DriftInputError as exc:
        where = (f"{exc.side} file {paths[exc.side]!r}" if exc.side in paths
                 else f"reference file {reference!r} vs current file {current!r}")
        _fail(f"{where}: {exc}")
    except Exception as exc:  # a bug must not look like "drift" (exit 1)
        _fail(f"internal error comparing {reference!r} and {current!r}: {type(exc).__name__}: {exc}")
    click.echo(report.to_json(indent=2) if as_json else report.format_table())
    sys.exit(EXIT_DRIFT if report.drift_detected else EXIT_NO_DRIFT)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``python -m driftguard.components.drift.cli``."""
    drift.main(args=list(argv) if argv is not None else None, prog_name="driftguard drift")


if __name__ == "__main__":
    main()
