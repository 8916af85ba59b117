"""Reading a label table (CSV, TSV or parquet) into its column names and rows of text, bounded:
a table larger than :data:`MAX_TABLE_BYTES`, text that is not UTF-8, a malformed CSV record or an
unreadable parquet file is a one-line :class:`~tlf.errors.TlfError`, never a traceback.

CSV and TSV are read with the standard library's ``csv`` module (no extra dependency); parquet
with pyarrow (the ``tlf[parquet]`` extra). Every row keeps where it came from (``line N`` of a
text file, ``row N`` of a parquet file), so errors and problems name it.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from tlf.config_files import read_text
from tlf.errors import TlfError, first_line

MAX_TABLE_BYTES = 256 << 20  # 256 MiB: millions of rows; the rows are held in memory as text
FORMATS = ("csv", "tsv", "parquet")
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}

Rows = list[tuple[str, list[str]]]  # (where, one text per column)


def table_format(path: Path, given: str | None) -> str:
    """``given``, else the format the suffix of ``path`` names; an unknown suffix is an error."""
    if given is not None:
        return given
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise TlfError(f"cannot tell the format of table {path} from its suffix {path.suffix!r}",
                       hint=f"name it with format=: table:{path},format=csv (one of {', '.join(FORMATS)})")
    return found


def read_table(path: Path, fmt: str) -> tuple[list[str], Rows]:
    """(column names, rows) of the table at ``path`` in format ``fmt`` (one of :data:`FORMATS`)."""
    columns, rows = _read_parquet(path) if fmt == "parquet" else _read_text_table(path, fmt)
    columns = [c.strip() for c in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise TlfError(f"table {path} names column(s) {', '.join(map(repr, repeated))} more than once",
                       hint="give every column its own name")
    return columns, rows


def _read_text_table(path: Path, fmt: str) -> tuple[list[str], Rows]:
    text = read_text(path, "table", MAX_TABLE_BYTES, too_large="tlf reads tables up to that size",
                     hint="split the table, or keep only the columns tlf reads (image, label, split)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader, None)
        if header is None:
            raise TlfError(f"table {path} is empty", hint="its first line names the columns, e.g. image,label,split")
        rows = [(f"line {reader.line_num}", record) for record in reader if record]  # blank lines hold no row
    except csv.Error as exc:
        raise TlfError(f"table {path} line {reader.line_num}: {exc}",
                       hint="quote fields that hold the delimiter, a quote or a line break") from None
    return header, rows


def _read_parquet(path: Path) -> tuple[list[str], Rows]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TlfError(f"reading the parquet table {path} needs pyarrow",
                       hint="pip install 'tlf[parquet]', or save the table as CSV") from None
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise TlfError(f"cannot read table {path}: {exc.strerror or exc}", hint="check the path and its permissions") from None
    if size > MAX_TABLE_BYTES:
        raise TlfError(f"table {path} is larger than {MAX_TABLE_BYTES >> 20} MiB; tlf reads tables up to that size",
                       hint="split the table, or keep only the columns tlf reads (image, label, split)")
    try:
        data = pq.read_table(path).to_pydict()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not parquet
        raise TlfError(f"cannot read the parquet table {path}: {first_line(exc)}", hint="check that it is a parquet file") from None
    columns = list(data)
    values = [["" if v is None else str(v) for v in data[c]] for c in columns]
    return columns, [(f"row {i + 1}", list(row)) for i, row in enumerate(zip(*values))]
