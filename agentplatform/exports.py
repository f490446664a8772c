"""CSV exports every app uses: formula-injection-safe cells and constant-memory streaming.

``csv_safe`` neutralises cells a spreadsheet would run as a formula (OWASP "CSV Injection"): a text
cell starting with ``=``, ``+``, ``-``, ``@``, tab, CR or LF gets a leading apostrophe, which Excel,
LibreOffice and Google Sheets show as text. So does a text cell that already starts with an
apostrophe, which makes the escape reversible: ``restore_cell`` removes exactly one leading
apostrophe and gives back the original text (the retention archives are the only copy of the rows
they hold, and are read back to verify them). Numbers are written as they are: ``-3`` is data, not
a formula, and quoting it would corrupt every negative value.

``stream_csv`` is Django's "streaming large CSV files" recipe (an ``Echo`` pseudo-buffer handed to
``csv.writer``) over any iterable of rows; a QuerySet is consumed with ``.iterator(chunk_size=...)``
so neither Django's result cache nor the driver holds more than one chunk. Rows are joined into
~64 KiB pieces before they are yielded: one WSGI write per row costs more than the CSV itself.

``write_csv`` writes the same bytes to a file object (archives and scheduled exports).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# Rows fetched per database round trip when a QuerySet is exported.
DEFAULT_CHUNK_SIZE = 2000
# Characters gathered before one piece of the response is yielded.
_PIECE_CHARS = 64 * 1024


# The apostrophe itself too: without it, "=x" and "'=x" would both be written "'=x".
_ESCAPED_START = frozenset((*FORMULA_PREFIXES, "'"))


def csv_safe(value: Any) -> str:
    """``value`` as a CSV cell that no spreadsheet will evaluate as a formula."""
    # Called once per cell of million-row exports: the common types are tested first, by identity.
    kind = type(value)
    if kind is str:
        text = value
    elif value is None:
        return ""
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int or kind is float or isinstance(value, decimal.Decimal):
        return str(value)
    elif isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    elif isinstance(value, uuid.UUID):
        return str(value)
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    else:
        text = str(value)
    if text and text[0] in _ESCAPED_START:
        return "'" + text
    return text


def restore_cell(cell: str) -> str:
    """The text ``csv_safe`` was given, from the cell it wrote (one leading apostrophe removed)."""
    return cell[1:] if cell.startswith("'") else cell


class Echo:
    """A file-like object whose ``write`` returns what it is given (Django's streaming recipe)."""

    def write(self, value: str) -> str:
        return value


def iterate_rows(rows: Iterable[Sequence[Any]], *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Sequence[Any]]:
    """Rows of ``rows``; a QuerySet is streamed in chunks instead of being cached whole."""
    if isinstance(rows, QuerySet):
        return rows.iterator(chunk_size=chunk_size)
    return iter(rows)


def csv_lines(
    rows: Iterable[Sequence[Any]],
    header: Sequence[str],
    *,
    row_to_cells: Callable[[Any], Sequence[Any]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[str]:
    """CSV text of ``header`` then ``rows``, every cell passed through ``csv_safe``, in ~64 KiB pieces.

    ``row_to_cells`` turns each row into its cells (for querysets of model instances); by default a
    row is already a sequence of cells (``values_list``).
    """
    writer = csv.writer(Echo())
    piece: list[str] = [writer.writerow([csv_safe(name) for name in header])]
    size = len(piece[0])
    for row in iterate_rows(rows, chunk_size=chunk_size):
        cells = row_to_cells(row) if row_to_cells else row
        line = writer.writerow([csv_safe(cell) for cell in cells])
        piece.append(line)
        size += len(line)
        if size >= _PIECE_CHARS:
            yield "".join(piece)
            piece, size = [], 0
    if piece:
        yield "".join(piece)


def stream_csv(
    rows_iterable: Iterable[Sequence[Any]],
    header: Sequence[str],
    *,
    filename: str = "export.csv",
    row_to_cells: Callable[[Any], Sequence[Any]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> StreamingHttpResponse:
    """A streaming ``text/csv`` download of ``header`` and ``rows_iterable`` in constant memory."""
    safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "._-") or "export.csv"
    response = StreamingHttpResponse(
        csv_lines(rows_iterable, header, row_to_cells=row_to_cells, chunk_size=chunk_size),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def write_csv(
    file: IO[str],
    rows_iterable: Iterable[Sequence[Any]],
    header: Sequence[str],
    *,
    row_to_cells: Callable[[Any], Sequence[Any]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """Writes the same CSV as ``stream_csv`` to a text file; returns the number of data rows."""
    count = 0

    def counted(rows):
        nonlocal count
        for row in iterate_rows(rows, chunk_size=chunk_size):
            count += 1
            yield row

    for piece in csv_lines(counted(rows_iterable), header, row_to_cells=row_to_cells, chunk_size=chunk_size):
        file.write(piece)
    return count
