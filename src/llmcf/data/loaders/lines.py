"""The one reader of line-based text files behind every loader.

:func:`parse_delimited` turns a delimited text file (TSV, CSV, ``|`` or ``::`` separated, with
or without a header line, optionally with CSV quoting) into typed numpy columns;
:func:`json_lines` reads JSON-lines files with the same line numbering. Every error is a
:class:`~llmcf.errors.DataError` naming the file, the 1-based line (header and blank lines
counted), the column and the value.

How a table is parsed
    A line-by-line reference parser (:func:`_parse_reference`) defines the result. Large files
    take a vectorised path first: ``np.fromstring`` for all-integer headerless tables (MovieLens
    ``u.data``), pandas' C parser otherwise. The vectorised result is used only when it can be
    vouched for (no conversion failure, finite floats, every record with the declared number of
    fields, counted with numpy); otherwise the reference parser runs, and either returns the
    columns or raises naming the first bad line. Files under ``_FAST_MIN_BYTES`` go straight to
    the reference parser (no pandas import for the small MovieLens catalog files).

What the reference parser accepts
    * ``int`` fields: optional sign and ASCII digits, surrounding whitespace ignored; a float
      notation of a whole number (``"4.0"``, ``"1e3"``) is accepted as pandas accepts it; the
      value must fit in int64.
    * ``float`` fields: decimal or exponent notation; NaN and infinities are rejected.
    * ``float?`` fields: a ``float``, or missing (empty or NaN) read as NaN.
    * ``str`` fields: verbatim (CSV quotes removed when ``quoting``).
    * blank lines (only spaces, tabs other than the separator, ``\\r``): skipped, or with
      ``blank="trailing"`` accepted only after the last record.
"""

from __future__ import annotations

import ast
import codecs
import csv
import gzip
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from llmcf.errors import DataError

__all__ = [
    "BlankLines",
    "Kind",
    "Table",
    "decode",
    "header_names",
    "iter_lines",
    "json_lines",
    "parse_delimited",
    "read_bytes",
]

Kind = Literal["int", "float", "float?", "str"]
BlankLines = Literal["skip", "trailing"]

# below this size the reference parser is about as fast as pandas and needs no pandas import
_FAST_MIN_BYTES = 1 << 16
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_FLOAT = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.ASCII | re.I
)
_BLANK = " \t\r\f\v"
_NUMBER_SPACE = _BLANK + "\n"  # around a number (a quoted field may hold a newline)
# what int() / float() would accept beyond _INT / _FLOAT: non-ASCII digits or spaces, "_"
_NOT_PLAIN = re.compile(r"[^ -~\t\r\f\v]|_")
# encodings in which the separator, quote and newline are the single ASCII bytes
_ASCII_COMPATIBLE = {"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15"}
_HEAD_BYTES = 1 << 20
_DTYPES: dict[str, type] = {
    "int": np.int64,
    "float": np.float64,
    "float?": np.float64,
    "str": object,
}


# ---------------------------------------------------------------------------------- files
def read_bytes(path: Path) -> bytes:
    """Raw bytes of a file, gunzipped when the name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read file: {exc}", path=str(path)) from None


def decode(data: bytes, path: Path | str, encoding: str) -> str:
    """Decode ``data``; a failure names the encoding tried, the byte offset and the line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"cannot decode as {encoding} at byte offset {exc.start} ({exc.reason}); "
            "pass the right encoding=",
            path=str(path),
            line=line,
            value=data[exc.start : exc.start + 4],
        ) from None
    except LookupError:
        raise DataError("unknown encoding", path=str(path), value=encoding) from None


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of every non-blank line; lines end at ``\\n`` only, ``\\r`` dropped."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip(_BLANK):
            yield lineno, line


# ---------------------------------------------------------------------------------- result
class Table:
    """Typed columns of a delimited file, with the file line of every row.

    Args:
        path: the file, as named in errors.
        names: the parsed column names, in file order.
        columns: name -> array of shape (n_rows,): int64, float64 or object (``str``).
        n_rows: number of records.
        lines: 1-based line of every row, or ``None`` to compute them with ``locate`` when
            first asked (error paths only).
        rest: with ``extra=True``, ``(rows, n)``: :attr:`rest` is then the fields of every
            row after the first ``n`` (sliced on first access).
    """

    def __init__(
        self,
        path: str,
        names: list[str],
        columns: dict[str, np.ndarray],
        n_rows: int,
        *,
        lines: np.ndarray | None = None,
        locate: Callable[[], np.ndarray] | None = None,
        rest: tuple[list[list[str]], int] | None = None,
    ) -> None:
        self.path = path
        self.names = names
        self.columns = columns
        self.n_rows = n_rows
        self._rest = rest
        self._lines = lines
        self._locate = locate

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __repr__(self) -> str:
        return f"Table({self.path!r}, {self.names}, n_rows={self.n_rows})"

    @property
    def rest(self) -> list[list[str]] | None:
        """With ``extra=True``, the fields after the declared ones, per row; else ``None``."""
        if self._rest is None:
            return None
        rows, n = self._rest
        if n >= 0:
            self._rest = ([row[n:] for row in rows], -1)
        return self._rest[0]

    def lines(self) -> np.ndarray:
        """1-based file line of every row (int64, shape (n_rows,))."""
        if self._lines is None:
            self._lines = (
                self._locate() if self._locate is not None else np.arange(1, self.n_rows + 1)
            )
            self._locate = None
        return self._lines

    def line(self, row: int) -> int:
        """1-based file line of row ``row`` (0-based); a quoted multi-line record's last line."""
        return int(self.lines()[row])


# ---------------------------------------------------------------------------------- entry point
def parse_delimited(
    data: bytes,
    path: Path | str,
    fields: Sequence[tuple[str, Kind]] | None = None,
    *,
    sep: str,
    header: bool = False,
    quoting: bool = False,
    extra: bool = False,
    blank: BlankLines = "skip",
    encoding: str = "utf-8",
) -> Table:
    """Parse delimited text into typed columns; the one line parser of :mod:`llmcf.data.loaders`.

    Args:
        data: the file's bytes (see :func:`read_bytes`).
        path: the file, as named in errors.
        fields: ``(name, kind)`` pairs, kind ``"int"``, ``"float"``, ``"float?"`` (a float
            or missing: empty or NaN -> NaN) or ``"str"``. Without a
            header, the fields of every line in order (names are used in errors). With a
            header, the columns to return, by header name; ``None`` returns every column as
            ``str``.
        sep: field separator, one or more characters (``"::"`` for MovieLens ``.dat``).
        header: the first non-blank line holds the column names.
        quoting: CSV quoting (``"a, b"``, ``""`` inside quotes, newlines inside quotes);
            single-character separators only.
        extra: lines may have more fields than declared (headerless only); they are kept as
            text in :attr:`Table.rest`.
        blank: blank lines are skipped anywhere (``"skip"``) or only after the last record
            (``"trailing"``; a blank line between records is an error).
        encoding: text encoding (``str`` fields and names; numbers are ASCII).

    Raises:
        DataError: empty file; wrong number of fields (``expected N fields, found M``); a
            value that is not an integer / not a number / not finite / out of the int64 range
            (naming the column); a missing or duplicate header column; undecodable bytes;
            a blank line between records with ``blank="trailing"``.
    """
    label = str(path)
    if header and extra:
        raise ValueError("extra fields are only supported without a header")
    if not header and not fields:
        raise ValueError("fields are required without a header")
    if not sep or "\n" in sep or "\r" in sep:
        raise ValueError(f"invalid separator {sep!r}")
    quoting = quoting and len(sep) == 1
    if not data or data.isspace():  # isspace stops at the first other byte, no copy
        raise DataError("empty file", path=label)
    if len(data) >= _FAST_MIN_BYTES and not extra:
        table = _parse_vectorised(
            data,
            label,
            fields,
            sep=sep,
            header=header,
            quoting=quoting,
            blank=blank,
            encoding=encoding,
        )
        if table is not None:
            return table
    return _parse_reference(
        data,
        label,
        fields,
        sep=sep,
        header=header,
        quoting=quoting,
        extra=extra,
        blank=blank,
        encoding=encoding,
    )


def header_names(
    data: bytes, path: Path | str, *, sep: str, quoting: bool = False, encoding: str = "utf-8"
) -> tuple[list[str], int]:
    """Column names of a delimited file's header (its first non-blank record) and its line.

    Raises:
        DataError: empty file, duplicate column name.
    """
    label = str(path)
    if len(data) > _HEAD_BYTES:  # the cut may split a character: a header has none there
        try:
            text = data[:_HEAD_BYTES].decode(encoding, errors="replace")
        except LookupError:
            raise DataError("unknown encoding", path=label, value=encoding) from None
    else:
        text = decode(data, label, encoding)
    for lineno, row in _records(text.removeprefix("\ufeff"), sep, quoting and len(sep) == 1, label):
        if row is not None:
            return _check_names(row, label, lineno), lineno
    raise DataError("empty file", path=label)


# ---------------------------------------------------------------------------------- records
def _records(
    text: str, sep: str, quoting: bool, label: str
) -> Iterator[tuple[int, list[str] | None]]:
    """``(line, fields)`` of every record of ``text``; ``fields`` is ``None`` for a blank line.

    A blank line holds only spaces, ``\\t``, ``\\r``, ``\\f``, ``\\v`` (the separator excluded). With
    ``quoting`` the csv module splits records (quoted separators and newlines) and the line is
    the record's last; otherwise lines end at ``\\n`` and fields are ``line.split(sep)``.
    """
    blank_chars = "".join(c for c in _BLANK if c not in sep)
    if quoting:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(
                    f"cannot parse CSV: {exc}", path=label, line=reader.line_num
                ) from None
            if not row or (len(row) == 1 and not row[0].strip(blank_chars)):
                yield reader.line_num, None
            else:
                yield reader.line_num, row
    else:
        for lineno, line in enumerate(text.split("\n"), start=1):
            if line.endswith("\r"):
                line = line[:-1]
            yield lineno, (line.split(sep) if line.strip(blank_chars) else None)


def _scan(
    text: str, sep: str, quoting: bool, label: str
) -> tuple[list[list[str]], list[int], list[int], DataError | None]:
    """All of ``text`` at once: ``(records, their lines, blank lines, error)``.

    The same records as :func:`_records`; ``error`` is a CSV error that ended the scan (the
    records before it are returned). Without quotes in the text, quoting changes nothing and
    the lines are split in bulk.
    """
    blank_chars = "".join(c for c in _BLANK if c not in sep)
    if quoting and ('"' in text or text.count("\r") != text.count("\r\n")):
        rows: list[list[str]] = []
        lines: list[int] = []
        blanks: list[int] = []
        error = None
        try:
            for lineno, row in _records(text, sep, quoting, label):
                if row is None:
                    blanks.append(lineno)
                else:
                    rows.append(row)
                    lines.append(lineno)
        except DataError as exc:
            error = exc
        return rows, lines, blanks, error
    raw = text.split("\n")
    if "\r" in text:
        raw = [line[:-1] if line.endswith("\r") else line for line in raw]
    split = [line.split(sep) for line in raw]
    # a line holding a separator is never blank: only one-field lines need a look
    widths = list(map(len, split))
    blank = (
        [k for k, width in enumerate(widths) if width == 1 and not raw[k].strip(blank_chars)]
        if 1 in widths
        else []
    )
    if not blank:
        return split, list(range(1, len(split) + 1)), [], None
    if blank[0] == len(split) - len(blank):
        # only trailing blank lines (sorted, distinct: the usual final newline): cut them off
        return split[: blank[0]], list(range(1, blank[0] + 1)), [k + 1 for k in blank], None
    keep = np.ones(len(split), dtype=bool)
    keep[blank] = False
    kept = np.flatnonzero(keep).tolist()
    return [split[k] for k in kept], [k + 1 for k in kept], [k + 1 for k in blank], None


def _check_names(names: list[str], label: str, line: int) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError("duplicate column name in header", path=label, line=line, value=name)
        seen.add(name)
    return names


def _select(
    names: list[str], fields: Sequence[tuple[str, Kind]] | None, label: str, line: int
) -> list[tuple[int, str, Kind]]:
    """(position, name, kind) of the header columns to return."""
    if fields is None:
        return [(k, name, "str") for k, name in enumerate(names)]
    missing = [name for name, _ in fields if name not in names]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; available columns: {names}", path=label, line=line
        )
    return [(names.index(name), name, kind) for name, kind in fields]


# ---------------------------------------------------------------------------------- reference
def _parse_reference(
    data: bytes,
    label: str,
    fields: Sequence[tuple[str, Kind]] | None,
    *,
    sep: str,
    header: bool,
    quoting: bool,
    extra: bool,
    blank: BlankLines,
    encoding: str,
) -> Table:
    """The line-by-line parser that defines the result (see the module docstring)."""
    text = decode(data, label, encoding).removeprefix("\ufeff")
    rows, lines, blanks, pending = _scan(text, sep, quoting, label)
    if header:
        if not rows:
            raise pending or DataError("empty file", path=label)
        names = _check_names(rows[0], label, lines[0])
        picks = _select(names, fields, label, lines[0])
        rows, lines = rows[1:], lines[1:]
    else:
        assert fields is not None
        names = [name for name, _ in fields]
        picks = [(k, name, kind) for k, (name, kind) in enumerate(fields)]
        if not rows:
            raise pending or DataError("empty file", path=label)
    # the records end at the first problem line: a CSV error, a record without len(names)
    # fields, or (blank="trailing") a blank line followed by more text
    n = len(names)
    problems = [] if pending is None or pending.line is None else [(pending.line, pending)]
    widths = list(map(len, rows))
    if (min(widths) < n) if extra and widths else (widths.count(n) != len(widths)):
        k = next(k for k, w in enumerate(widths) if w < n or (w > n and not extra))
        at_least = "at least " if extra else ""
        problems.append(
            (
                lines[k],
                DataError(
                    f"expected {at_least}{n} fields, found {widths[k]}",
                    path=label,
                    line=lines[k],
                    value=sep.join(rows[k]),
                ),
            )
        )
    last_text = max([line for line, _ in problems] + lines[-1:], default=0)
    if blank == "trailing" and blanks and blanks[0] < last_text:
        problems.append((blanks[0], DataError("empty line", path=label, line=blanks[0])))
    if problems:
        line, pending = min(problems, key=lambda p: p[0])
        cut = int(np.searchsorted(lines, line))
        rows, lines = rows[:cut], lines[:cut]
    # zip(*rows) stops at the shortest row: every row has at least n fields
    by_position = list(zip(*rows, strict=False)) if rows else [() for _ in range(n)]
    raw = [by_position[k] for k, _, _ in picks]
    columns: dict[str, np.ndarray] = {}
    bad: tuple[int, int, str] | None = None  # (row, column position, reason)
    for position, (values, (_, name, kind)) in enumerate(zip(raw, picks, strict=True)):
        array, row_bad, reason = _convert(values, kind)
        if array is None:
            if bad is None or row_bad < bad[0]:
                bad = (row_bad, position, reason)
            continue
        columns[name] = array
    if bad is not None:
        row_bad, position, reason = bad
        raise DataError(
            reason,
            path=label,
            line=lines[row_bad],
            column=picks[position][1],
            value=raw[position][row_bad],
        )
    if pending is not None:
        raise pending
    return Table(
        label,
        [name for _, name, _ in picks],
        columns,
        len(lines),
        lines=np.asarray(lines, dtype=np.int64),
        rest=(rows, n) if extra else None,
    )


def _convert(values: Sequence[str], kind: Kind) -> tuple[np.ndarray | None, int, str]:
    """``(array, -1, "")``, or ``(None, first bad row, reason)``.

    Plain ASCII columns (no ``_``, no exotic whitespace) go through ``int``/``float`` in one
    ``map``: on them those accept exactly what :data:`_INT` / :data:`_FLOAT` accept (whole
    floats such as ``"4.0"`` take the token-by-token path).
    """
    if kind == "str":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out, -1, ""
    plain = _NOT_PLAIN.search("".join(values)) is None
    if kind == "int":
        if plain:
            try:
                ints = list(map(int, values))
            except ValueError:
                pass
            else:
                if not ints or (_INT64_MIN <= min(ints) and max(ints) <= _INT64_MAX):
                    return np.asarray(ints, dtype=np.int64), -1, ""
        ints = []
        for k, value in enumerate(values):
            token = value.strip(_NUMBER_SPACE)
            if _INT.fullmatch(token) is not None:
                number = int(token)
            elif _FLOAT.fullmatch(token) is not None and float(token).is_integer():
                number = int(float(token))  # "4.0", "1e3": whole numbers, as pandas reads them
            else:
                return None, k, "not an integer"
            if not _INT64_MIN <= number <= _INT64_MAX:
                return None, k, "integer out of the int64 range"
            ints.append(number)
        return np.asarray(ints, dtype=np.int64), -1, ""
    optional = kind == "float?"
    if plain and not optional:
        try:
            array = np.asarray(list(map(float, values)), dtype=np.float64)
        except ValueError:
            pass
        else:
            if np.isfinite(array).all():
                return array, -1, ""
    floats: list[float] = []
    for k, value in enumerate(values):
        token = value.strip(_NUMBER_SPACE)
        if optional and not token:
            floats.append(np.nan)
            continue
        if _FLOAT.fullmatch(token) is None:
            return None, k, "not a number"
        parsed = float(token)
        if parsed - parsed != 0.0 and not (optional and parsed != parsed):
            return None, k, "not a finite number"  # NaN (unless optional) or infinite
        floats.append(parsed)
    return np.asarray(floats, dtype=np.float64), -1, ""


# ---------------------------------------------------------------------------------- vectorised
def _parse_vectorised(
    data: bytes,
    label: str,
    fields: Sequence[tuple[str, Kind]] | None,
    *,
    sep: str,
    header: bool,
    quoting: bool,
    blank: BlankLines,
    encoding: str,
) -> Table | None:
    """The columns, or ``None`` when the reference parser must decide."""
    try:
        ascii_compatible = codecs.lookup(encoding).name in _ASCII_COMPATIBLE
    except LookupError:
        return None
    if not ascii_compatible:
        return None
    if len(sep) > 1:
        # ``a::b`` -> ``a\tb`` splits exactly as ``str.split("::")`` when there is no tab
        if b"\t" in data:
            return None
        data, sep = data.replace(sep.encode(encoding), b"\t"), "\t"
    if not header and fields is not None and all(kind == "int" for _, kind in fields):
        if not (quoting and b'"' in data):
            values = _int_matrix(data, sep, len(fields))
            if values is None:
                return None
            return Table(
                label,
                [name for name, _ in fields],
                {name: values[:, k] for k, (name, _) in enumerate(fields)},
                values.shape[0],
            )
    if blank == "trailing" and _has_blank_line(data, sep):
        return None  # pandas skips blank lines anywhere
    return _pandas_table(
        data, label, fields, sep=sep, header=header, quoting=quoting, encoding=encoding
    )


def _int_matrix(data: bytes, sep: str, n_cols: int) -> np.ndarray | None:
    """int64 (n, n_cols) from ``np.fromstring`` when every line has ``n_cols`` plain integers.

    ``fromstring`` splits at any whitespace, so the checks are: no whitespace besides the
    separator, ``\n`` and the ``\r`` of ``\r\n`` (every field is then at most one token), as
    many values as ``lines x n_cols`` (so none is empty), and the k-th group of ``n_cols - 1``
    separators lying on line k.
    """
    sep_byte = sep.encode()
    if len(sep_byte) != 1 or sep_byte in b" \x0b\x0c\r" or sep_byte[0] >= 128:
        return None
    # trailing blank lines go; a trailing separator (an empty field) stays
    body = data.rstrip(b"".join(bytes([c]) for c in b" \t\r\n\x0b\x0c" if c != sep_byte[0]))
    buf = np.frombuffer(body, dtype=np.uint8)
    others = [c for c in b" \t\x0b\x0c" if c != sep_byte[0]]
    if any(np.count_nonzero(buf == c) for c in others):
        return None
    n_cr = int(np.count_nonzero(buf == 13))
    if n_cr and n_cr != body.count(b"\r\n"):
        return None
    text = body if sep_byte == b"\t" else body.replace(sep_byte, b" ")
    try:
        with warnings.catch_warnings():
            # numpy warns (or raises) when a token is not an integer
            warnings.simplefilter("error")
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    newlines = np.flatnonzero(buf == 10)
    n_lines = len(newlines) + 1
    if values.size != n_lines * n_cols:
        return None
    if n_cols > 1:
        seps = np.flatnonzero(buf == sep_byte[0])
        if len(seps) != n_lines * (n_cols - 1):
            return None
        groups = seps.reshape(n_lines, n_cols - 1)
        # sorted positions: group k after newline k-1 and before newline k means k's line
        if (groups[1:, 0] < newlines).any() or (groups[:-1, -1] > newlines).any():
            return None
    if values.size and (values.max() == _INT64_MAX or values.min() == _INT64_MIN):
        return None  # fromstring saturates instead of failing on overflow
    return values.reshape(n_lines, n_cols)


def _pandas_table(
    data: bytes,
    label: str,
    fields: Sequence[tuple[str, Kind]] | None,
    *,
    sep: str,
    header: bool,
    quoting: bool,
    encoding: str,
) -> Table | None:
    import pandas as pd

    header_line = 0
    if header:
        names, header_line = header_names(data, label, sep=sep, quoting=quoting, encoding=encoding)
        picks = _select(names, fields, label, header_line)
    else:
        assert fields is not None
        names = [name for name, _ in fields]
        picks = [(k, name, kind) for k, (name, kind) in enumerate(fields)]
    kinds = {name: kind for _, name, kind in picks}
    dtypes = {name: _DTYPES[kinds.get(name, "str")] for name in names}
    # an empty "float?" field is NaN; every other field is kept as written
    optional = {name: [""] for name, kind in kinds.items() if kind == "float?"}
    try:
        # bytes, not a decoded str: pandas' C parser reads them without a copy (it fails on
        # undecodable bytes, which the reference parser then reports)
        with warnings.catch_warnings():
            # a failed int64 cast warns before it raises: the reference parser reports it
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                encoding=encoding,
                sep=sep,
                header=0 if header else None,
                names=names,
                dtype=dtypes,  # type: ignore[arg-type]
                na_filter=bool(optional),
                na_values=optional or None,
                keep_default_na=False,
                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
                skip_blank_lines=True,
                engine="c",
            )
    except (ValueError, OverflowError, TypeError, UnicodeDecodeError, csv.Error):
        return None  # pandas' ParserError and EmptyDataError are ValueErrors
    if not isinstance(frame.index, pd.RangeIndex) or list(frame.columns) != names:
        return None  # a first record with extra fields became an index
    columns: dict[str, np.ndarray] = {}
    for _, name, kind in picks:
        values = frame[name].to_numpy()
        if kind == "float" and not np.isfinite(values).all():
            return None
        if kind == "float?" and np.isinf(values).any():
            return None
        if kind == "str":
            values = values.astype(object, copy=False)
        columns[name] = values
    # pandas pads a short record with "" (NaN in a "float?" column, a failure in other
    # numeric ones): count the fields only when the last column has an empty cell
    last = frame[names[-1]].to_numpy()
    padded = (last == "").any() if dtypes[names[-1]] is object else False
    if kinds.get(names[-1]) == "float?":
        padded = bool(np.isnan(last).any())
    if padded and not _field_counts_match(data, sep, len(names), quoting):
        return None
    n_rows = len(frame)
    return Table(
        label,
        [name for _, name, _ in picks],
        columns,
        n_rows,
        locate=lambda: _record_lines(data, label, sep, quoting, encoding, header, n_rows),
    )


def _field_counts_match(data: bytes, sep: str, n_fields: int, quoting: bool) -> bool:
    """Whether every non-empty record has ``n_fields`` fields, counted with numpy.

    With quoting, a separator or newline between the 2k-th and (2k+1)-th ``"`` is inside
    quotes (``""`` escapes toggle twice). Whitespace-only lines count as records here (they
    fail), which only sends the file to the reference parser.
    """
    size = len(data)
    while size and data[size - 1] in b"\r\n":  # final newlines (no copy of the data)
        size -= 1
    buf = np.frombuffer(data, dtype=np.uint8)[:size]
    ends = np.flatnonzero(buf == 10)
    seps = np.flatnonzero(buf == ord(sep))
    if quoting and b'"' in data:
        quotes = np.flatnonzero(buf == 34)
        opens, closes = quotes[0::2], np.append(quotes[1::2], size)[: len(quotes[0::2])]
        ends, seps = _outside(ends, opens, closes), _outside(seps, opens, closes)
    # empty records (blank lines, pandas skips them) hold no separator: drop their ends
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [size]))
    length = stops - starts
    empty = (length == 0) | ((length == 1) & (buf[np.maximum(stops - 1, 0)] == 13))
    n_records = int((~empty).sum())
    if len(seps) != n_records * (n_fields - 1):
        return False
    if n_fields == 1 or n_records <= 1:
        return True
    groups = seps.reshape(n_records, n_fields - 1)
    boundaries = ends[~empty[:-1]][: n_records - 1]  # ends of the non-empty records but the last
    # sorted positions: group k after the end of record k-1 and before the end of record k
    return not ((groups[1:, 0] < boundaries).any() or (groups[:-1, -1] > boundaries).any())


def _outside(positions: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """The sorted ``positions`` not inside any ``[opens[k], closes[k]]`` (sorted, disjoint)."""
    delta = np.zeros(len(positions) + 1, dtype=np.int32)
    np.add.at(delta, np.searchsorted(positions, opens), 1)
    np.add.at(delta, np.searchsorted(positions, closes), -1)
    return positions[np.cumsum(delta[:-1]) == 0]


def _has_blank_line(data: bytes, sep: str) -> bool:
    """Whether a blank line (see :func:`_records`) comes before the last non-blank one."""
    blank = bytes(c for c in _BLANK.encode() if chr(c) not in sep)
    size = len(data)
    while size and data[size - 1] in blank + b"\n":  # trailing blank lines (no copy)
        size -= 1
    buf = np.frombuffer(data, dtype=np.uint8)[:size]
    content = np.ones(256, dtype=bool)
    content[list(blank + b"\n")] = False
    ends = np.flatnonzero(buf == 10)
    if not len(ends):
        return False
    # content bytes up to each newline: a line adds none when it is blank
    seen = np.cumsum(content[buf], dtype=np.int64)[ends]
    return bool(seen[0] == 0 or (np.diff(seen) == 0).any())


def _record_lines(
    data: bytes, label: str, sep: str, quoting: bool, encoding: str, header: bool, n_rows: int
) -> np.ndarray:
    """1-based line of every data record (header excluded), for error messages."""
    if not _has_blank_line(data, sep) and not (quoting and b'"' in data):
        return np.arange(1, n_rows + 1, dtype=np.int64) + (1 if header else 0)
    text = decode(data, label, encoding).removeprefix("\ufeff")
    lines = _scan(text, sep, quoting, label)[1]
    return np.asarray(lines[1:] if header else lines, dtype=np.int64)


# ---------------------------------------------------------------------------------- JSON lines
def json_lines(
    data: bytes, path: Path | str, *, encoding: str = "utf-8"
) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, record)`` of every non-blank line of a JSON-lines file.

    Strict JSON, or a Python literal as in old Amazon dumps (``{'asin': 'B0...'}``).

    Raises:
        DataError: naming file and line: invalid JSON (also nesting too deep for the parser
            and integers too long to convert), a record that is not an object, undecodable
            bytes.
    """
    label = str(path)
    for lineno, line in iter_lines(decode(data, label, encoding)):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            record = _python_literal(line)
            if record is None:
                reason = (
                    f"{exc.msg} at column {exc.colno}"
                    if isinstance(exc, json.JSONDecodeError)
                    else "nested too deeply"
                    if isinstance(exc, RecursionError)
                    else str(exc)
                )
                raise DataError(
                    f"invalid JSON: {reason}", path=label, line=lineno, value=line[:80]
                ) from None
        if not isinstance(record, dict):
            raise DataError("expected a JSON object", path=label, line=lineno, value=line[:80])
        yield lineno, record


def _python_literal(line: str) -> object | None:
    """``ast.literal_eval(line)``, or ``None`` when it is not a (parseable) literal."""
    try:
        return ast.literal_eval(line)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
