"""The one line parser (llmcf.data.loaders.lines): every case on both of its paths.

Each case runs twice: with the vectorised path allowed for any size (``_FAST_MIN_BYTES = 0``)
and with the line-by-line reference parser only. Both must give the same columns and line
numbers, or the same error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcf.data.loaders import lines
from llmcf.data.loaders.lines import BlankLines, Kind, Table, json_lines, parse_delimited
from llmcf.errors import DataError

U_DATA: list[tuple[str, Kind]] = [
    ("user", "int"),
    ("item", "int"),
    ("rating", "int"),
    ("timestamp", "int"),
]
DAT: list[tuple[str, Kind]] = [
    ("UserID", "int"),
    ("MovieID", "int"),
    ("Rating", "float"),
    ("Timestamp", "int"),
]


def both(data: bytes, fields: Sequence[tuple[str, Kind]] | None = None, **kw: object) -> Table:
    """parse_delimited on the vectorised-or-reference path and on the reference path only;
    asserts they agree (same columns and lines, or the same error) and returns the first."""
    fast_error: DataError | None = None
    slow_error: DataError | None = None
    fast = slow = None
    saved = lines._FAST_MIN_BYTES
    try:
        lines._FAST_MIN_BYTES = 0
        try:
            fast = parse_delimited(data, "f.txt", fields, **kw)  # type: ignore[arg-type]
        except DataError as exc:
            fast_error = exc
        lines._FAST_MIN_BYTES = 1 << 62
        try:
            slow = parse_delimited(data, "f.txt", fields, **kw)  # type: ignore[arg-type]
        except DataError as exc:
            slow_error = exc
    finally:
        lines._FAST_MIN_BYTES = saved
    describe = [
        None if e is None else (str(e), e.path, e.line, e.column) for e in (fast_error, slow_error)
    ]
    assert describe[0] == describe[1]
    if fast_error is not None:
        raise fast_error
    assert fast is not None and slow is not None
    assert fast.names == slow.names and len(fast) == len(slow)
    for name in fast.names:
        a, b = fast[name], slow[name]
        assert a.dtype == b.dtype, name
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)
        else:
            assert a.tolist() == b.tolist(), name
    assert fast.lines().tolist() == slow.lines().tolist()
    return fast


# ------------------------------------------------------------------------------ integer tables
def test_int_table_values_and_lines() -> None:
    table = both(b"1\t10\t5\t100\n2\t20\t3\t200\n", U_DATA, sep="\t")
    assert table["user"].tolist() == [1, 2] and table["timestamp"].dtype == np.int64
    assert table.lines().tolist() == [1, 2] and table.line(1) == 2


def test_int_table_takes_the_vectorised_path() -> None:
    data = b"".join(b"%d\t%d\t3\t%d\n" % (k, k + 1, 10 * k) for k in range(10_000))
    values = lines._int_matrix(data, "\t", 4)
    assert values is not None and values.shape == (10_000, 4)
    assert (
        lines._pandas_table(data, "f", DAT, sep="\t", header=False, quoting=False, encoding="utf-8")
        is not None
    )


@pytest.mark.parametrize(
    "tail", [b"\n", b"\n\n", b"\n\n\n", b"\n   \n", b"\r\n", b"\r\n\r\n", b"  \n\n"]
)
def test_trailing_blank_lines_are_accepted(tail: bytes) -> None:
    data = b"1\t10\t5\t100\n2\t20\t3\t200" + tail
    table = both(data, U_DATA, sep="\t", blank="trailing")
    assert len(table) == 2 and table.lines().tolist() == [1, 2]


def test_interior_blank_line() -> None:
    data = b"1\t10\t5\t100\n\n2\t20\t3\t200\n"
    with pytest.raises(DataError, match=r"f\.txt, line 2: empty line"):
        both(data, U_DATA, sep="\t", blank="trailing")
    table = both(data, U_DATA, sep="\t", blank="skip")
    assert table.lines().tolist() == [1, 3]


def test_compensating_ragged_lines_are_an_error() -> None:
    # 3 + 5 fields = 2 x 4 values: a plain value count cannot see it
    data = b"1\t10\t5\n2\t20\t3\t200\t7\n"
    with pytest.raises(
        DataError, match=r"line 1: expected 4 fields, found 3 \(value: '1\\t10\\t5'\)"
    ):
        both(data, U_DATA, sep="\t")
    data = b"1\t10 5\t100\n2\t20\t3\t\n"  # one field with two numbers, one empty field
    with pytest.raises(DataError, match=r"line 1: expected 4 fields, found 3"):
        both(data, U_DATA, sep="\t")
    with pytest.raises(DataError, match=r"line 2, column 'timestamp': not an integer"):
        both(b"1\t10\t5\t100\n2\t20\t3\t\n", U_DATA, sep="\t")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"x", r"line 2, column 'rating': not an integer \(value: 'x'\)"),
        (b"1.5", r"line 2, column 'rating': not an integer \(value: '1.5'\)"),
        (b"1e-3", r"not an integer"),
        (b"inf", r"not an integer"),
        (b"1_0", r"not an integer"),
        (b"9223372036854775808", r"line 2, column 'rating': integer out of the int64 range"),
        (b"-9223372036854775809", r"integer out of the int64 range"),
        (b"", r"line 2, column 'rating': not an integer \(value: ''\)"),
    ],
)
def test_bad_integers(token: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        both(b"1\t10\t5\t100\n2\t20\t" + token + b"\t200\n", U_DATA, sep="\t")
    assert (info.value.line, info.value.column) == (2, "rating")


def test_integer_edge_values() -> None:
    big = b"9223372036854775807"
    table = both(b"1\t-5\t+3\t" + big + b"\n 2 \t007\t4.0\t1e3\n", U_DATA, sep="\t")
    assert table["item"].tolist() == [-5, 7] and table["rating"].tolist() == [3, 4]
    assert table["timestamp"].tolist() == [2**63 - 1, 1000]


def test_crlf_and_other_separators() -> None:
    table = both(b"1,10,5,100\r\n2,20,3,200\r\n", U_DATA, sep=",")
    assert table["timestamp"].tolist() == [100, 200]
    table = both(b"1|10|5|100\n2|20|3|200\n", U_DATA, sep="|")
    assert table["item"].tolist() == [10, 20]


# ------------------------------------------------------------------------------ floats, ::
def test_multi_character_separator() -> None:
    table = both(b"1::10::4.5::978300760\n2::20::3::978302109\n", DAT, sep="::")
    assert table["Rating"].tolist() == [4.5, 3.0] and table["Rating"].dtype == np.float64
    with pytest.raises(DataError, match=r"line 2, column 'Rating': not a number \(value: 'oops'\)"):
        both(b"1::10::4.5::978300760\n1::20::oops::1\n", DAT, sep="::")
    with pytest.raises(DataError, match=r"line 1, column 'Rating': not a number \(value: ':4.5'\)"):
        both(b"1::10:::4.5::978300760\n", DAT, sep="::")  # ':::' is '::' then ':'
    with pytest.raises(DataError, match=r"line 1: expected 4 fields, found 5"):
        both(b"1::10::4.5::978300760::x\n", DAT, sep="::")
    # a tab in the data: the '::' -> tab shortcut would be wrong, the reference parser runs
    table = both(b"1::10::4.5::978300760\t\n", DAT, sep="::")
    assert table["Timestamp"].tolist() == [978300760]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"nan", "not a finite number"),
        (b"inf", "not a finite number"),
        (b"-Infinity", "not a finite number"),
        (b"1_0.5", "not a number"),
        (b"0x10", "not a number"),
        (b"", "not a number"),
        (b"1.5.5", "not a number"),
    ],
)
def test_bad_floats(token: bytes, message: str) -> None:
    with pytest.raises(DataError, match=rf"line 1, column 'Rating': {message}"):
        both(b"1::10::" + token + b"::978300760\n", DAT, sep="::")


def test_float_notations() -> None:
    table = both(b"1::1::3.::0\n1::2::.5::0\n1::3::1e0::0\n1::4:: 2.5 ::0\n", DAT, sep="::")
    assert table["Rating"].tolist() == [3.0, 0.5, 1.0, 2.5]


def test_optional_floats() -> None:
    fields: list[tuple[str, Kind]] = [("a", "str"), ("q", "float?"), ("b", "str")]
    table = both(b"a,q,b\nx,1.5,y\nx,,y\nx,nan,y\n", fields, sep=",", header=True, quoting=True)
    assert np.isnan(table["q"][1:]).all() and table["q"][0] == 1.5
    with pytest.raises(DataError, match=r"line 2, column 'q': not a finite number"):
        both(b"a,q,b\nx,inf,y\n", fields, sep=",", header=True, quoting=True)
    with pytest.raises(DataError, match=r"line 2, column 'q': not a number"):
        both(b"a,q,b\nx,abc,y\n", fields, sep=",", header=True, quoting=True)


# ------------------------------------------------------------------------------ headers, quoting
def test_header_quoting_and_record_lines() -> None:
    data = b'u,i,note\na,x,"one, two"\n\n"b\nc",y,"say ""hi"""\nd,z,\n'
    table = both(data, sep=",", header=True, quoting=True)
    assert table.names == ["u", "i", "note"]
    assert table["u"].tolist() == ["a", "b\nc", "d"]
    assert table["note"].tolist() == ["one, two", 'say "hi"', ""]
    assert table.lines().tolist() == [2, 5, 6]  # header and blank line counted, quoted newline too


def test_header_selects_and_types_columns() -> None:
    data = b"userId,movieId,rating,timestamp\n1,5,4.5,10\n2,6,3,20\n"
    fields: list[tuple[str, Kind]] = [("movieId", "int"), ("rating", "float")]
    table = both(data, fields, sep=",", header=True, quoting=True)
    assert table.names == ["movieId", "rating"] and table["movieId"].tolist() == [5, 6]
    with pytest.raises(
        DataError,
        match=r"f\.txt, line 1: missing column\(s\) \['tag'\]; available columns: \['userId'",
    ):
        both(data, [("tag", "str")], sep=",", header=True, quoting=True)
    with pytest.raises(DataError, match=r"line 1: duplicate column name in header \(value: 'u'\)"):
        both(b"u,u\n1,2\n", sep=",", header=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"u,i,r\na,x,4,extra\nb,y,3\n", r"line 2: expected 3 fields, found 4"),  # pandas: an index
        (b"u,i,r\na,x,4\nb,y,3,extra\n", r"line 3: expected 3 fields, found 4"),
        (b"u,i,r\na,x,4\nb,y\n", r"line 3: expected 3 fields, found 2"),
        (b'u,i,r\na,"x\ny",4\nb\n', r"line 4: expected 3 fields, found 1"),
        (b"u,i,r\n", None),
        (b"", r"f\.txt: empty file"),
        (b"\n  \n", r"f\.txt: empty file"),
    ],
)
def test_header_table_errors(data: bytes, message: str | None) -> None:
    if message is None:
        assert len(both(data, sep=",", header=True, quoting=True)) == 0
        return
    with pytest.raises(DataError, match=message):
        both(data, sep=",", header=True, quoting=True)


def test_short_record_found_in_a_large_file() -> None:
    rows = [b"user%d,item%d,%d" % (k, k, k % 5) for k in range(20_000)]
    rows[12_345] = b"user,item"
    data = b"u,i,r\n" + b"\n".join(rows) + b"\n"
    assert len(data) > lines._FAST_MIN_BYTES
    with pytest.raises(DataError, match=r"line 12347: expected 3 fields, found 2"):
        parse_delimited(data, "f.txt", sep=",", header=True, quoting=True)


def test_bom_and_encoding_errors() -> None:
    table = both("\ufeffu,i\na,é\n".encode(), sep=",", header=True, quoting=True)
    assert table.names == ["u", "i"] and table["i"].tolist() == ["é"]
    with pytest.raises(DataError, match=r"line 3: cannot decode as utf-8 at byte offset 13"):
        both(b"u,i\na,x\nb,caf\xe9\n", sep=",", header=True, quoting=True)
    table = both(b"u,i\na,x\nb,caf\xe9\n", sep=",", header=True, quoting=True, encoding="latin-1")
    assert table["i"].tolist() == ["x", "café"]


def test_extra_fields() -> None:
    fields: list[tuple[str, Kind]] = [("id", "int"), ("title", "str")]
    table = both(b"1|Heat|0|1\n2|Up\n", fields, sep="|", extra=True)
    assert table["title"].tolist() == ["Heat", "Up"] and table.rest == [["0", "1"], []]
    with pytest.raises(DataError, match=r"line 2: expected at least 2 fields, found 1"):
        both(b"1|Heat|0|1\n2\n", fields, sep="|", extra=True)


def test_the_first_bad_line_is_reported() -> None:
    with pytest.raises(DataError, match=r"line 1, column 'rating': not an integer"):
        both(b"1\t10\tx\t100\n2\t20\n", U_DATA, sep="\t")
    with pytest.raises(DataError, match=r"line 2: empty line"):
        both(b"1\t10\t5\t100\n\n2\t20\n", U_DATA, sep="\t", blank="trailing")
    with pytest.raises(DataError, match=r"line 2: expected 4 fields, found 2"):
        both(b"1\t10\t5\t100\n2\t20\n\n3\t30\t1\t1\n", U_DATA, sep="\t", blank="trailing")


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="fields are required"):
        parse_delimited(b"1\n", "f", sep=",")
    with pytest.raises(ValueError, match="separator"):
        parse_delimited(b"1\n", "f", [("a", "int")], sep="")


# ------------------------------------------------------------------------------ property
_NUMBERS = ["1", "-2", "30", "+5", "4.0", "2.5", "1e3", "1_0", "nan", "inf", " 7"]
_TEXTS = ["x", "é", "a b", "", '"', '""', '"q,"', 'a"b', ",", ":", "\t", " ", "\f"]
_TOKEN = st.sampled_from(_NUMBERS + _TEXTS)


@settings(max_examples=int(os.environ.get("LLMCF_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(
    rows=st.lists(st.lists(_TOKEN, min_size=1, max_size=5), min_size=1, max_size=6),
    sep=st.sampled_from([",", "\t", "::", "|"]),
    kinds=st.lists(st.sampled_from(["int", "float", "float?", "str"]), min_size=3, max_size=3),
    header=st.booleans(),
    quoting=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    blank_after=st.integers(min_value=-1, max_value=6),
    blank=st.sampled_from(["skip", "trailing"]),
)
def test_vectorised_and_reference_agree(
    rows: list[list[str]],
    sep: str,
    kinds: list[Kind],
    header: bool,
    quoting: bool,
    newline: str,
    blank_after: int,
    blank: BlankLines,
) -> None:
    names = ["a", "b", "c"]
    text_rows = [sep.join(row) for row in rows]
    if 0 <= blank_after <= len(text_rows):
        text_rows.insert(blank_after, "")
    if header:
        text_rows.insert(0, sep.join(names))
    data = (newline.join(text_rows) + newline).encode()
    fields = list(zip(names, kinds, strict=True))
    try:
        both(data, fields, sep=sep, header=header, quoting=quoting, blank=blank)
    except DataError:
        pass  # both raised the same error


# ------------------------------------------------------------------------------ JSON lines
def test_json_lines_records_and_errors() -> None:
    data = b"{\"a\": 1}\n\n{'a': 2}\n"
    assert [(n, r["a"]) for n, r in json_lines(data, "f.json")] == [(1, 1), (3, 2)]
    with pytest.raises(DataError, match=r"f\.json, line 1: invalid JSON: Expecting"):
        list(json_lines(b"{not json\n", "f.json"))
    with pytest.raises(DataError, match=r"f\.json, line 2: expected a JSON object"):
        list(json_lines(b'{"a": 1}\n[1, 2]\n', "f.json"))


def test_json_lines_pathological_lines() -> None:
    deep = b"[" * 200_000
    with pytest.raises(DataError, match=r"f\.json, line 2: invalid JSON: nested too deeply"):
        list(json_lines(b'{"a": 1}\n' + deep + b"\n", "f.json"))
    closed = b"[" * 5000 + b"]" * 5000
    with pytest.raises(DataError, match=r"line 1: invalid JSON"):
        list(json_lines(closed + b"\n", "f.json"))
    digits = b'{"a": 1' + b"0" * 5000 + b"}\n"
    with pytest.raises(DataError, match=r"line 1: invalid JSON"):
        list(json_lines(digits, "f.json"))
    # 1e400 parses (as an infinite float); the Amazon loader rejects it by field
    assert next(json_lines(json.dumps({"t": 1}).encode().replace(b"1", b"1e400"), "f"))[1][
        "t"
    ] == float("inf")
