"""Reading CSV and JSON Lines files: encodings, headers, row numbers and per-row errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from outreach.errors import DataFileError
from outreach.importing.reader import FileFormat, RawRow, detect_format, open_rows

REQUIRED = frozenset({"reference", "name"})
KNOWN = frozenset({"reference", "name", "amount", "due_date"})


def read(
    path: Path,
    fmt: FileFormat = "csv",
    *,
    required: frozenset[str] = REQUIRED,
    known: frozenset[str] = KNOWN,
) -> list[RawRow]:
    with open_rows(path, fmt, required=required, known=known) as source:
        return list(source)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


# --- encoding --------------------------------------------------------------------------------


def test_utf8_bom_does_not_leak_into_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfreference,name\nA-1,Jos\xc3\xa9\n")
    with open_rows(path, "csv", required=REQUIRED, known=KNOWN) as source:
        assert source.columns == ["reference", "name"]
        rows = list(source)
    assert rows == [RawRow(2, {"reference": "A-1", "name": "José"}, cells=("A-1", "José"))]


def test_utf8_bom_in_json_lines_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.jsonl", b'\xef\xbb\xbf{"reference": "A-1"}\n')
    assert read(path, "jsonl") == [RawRow(1, {"reference": "A-1"})]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_latin1_file_is_refused_whole_naming_the_line(tmp_path: Path, fmt: FileFormat) -> None:
    lines = (
        ["reference,name", "A-1,Ana", "A-2,José", "A-3,Bo"]
        if fmt == "csv"
        else ['{"reference": "A-1"}', '{"reference": "A-2"}', '{"name": "José"}']
    )
    path = write(tmp_path, f"latin1.{fmt}", ("\n".join(lines) + "\n").encode("latin-1"))
    required = REQUIRED if fmt == "csv" else frozenset()
    with pytest.raises(DataFileError) as caught:
        open_rows(path, fmt, required=required, known=KNOWN)
    message = str(caught.value)
    assert "line 3 " in message
    assert "0xE9" in message
    assert "Nothing was imported" in message


def test_truncated_utf8_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.csv", b"reference,name\nA-1,Jos\xc3")
    with pytest.raises(DataFileError, match="Nothing was imported"):
        read(path)


def test_non_utf8_line_number_is_right_past_a_character_split_across_chunks(
    tmp_path: Path,
) -> None:
    # check_utf8 reads 1 MiB chunks. A 4-byte character split across the first chunk
    # boundary, then a Latin-1 byte on line 2: the message must still say line 2 and 0xE9.
    emoji = "😀".encode()
    chunk = 1 << 20
    head = b"reference,name\n"
    body = head + b"a" * (chunk - len(head) - 3) + emoji + b"\xe9\n\n\n"
    assert body[:chunk].endswith(emoji[:3])
    path = write(tmp_path, "big.csv", body)
    with pytest.raises(DataFileError) as caught:
        read(path)
    assert "line 2 " in str(caught.value)
    assert "0xE9" in str(caught.value)


# --- header ----------------------------------------------------------------------------------


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "missing.csv", "reference,amount\nA-1,10\n")
    with pytest.raises(DataFileError) as caught:
        read(path)
    message = str(caught.value)
    assert "name" in message.split("required column(s)")[1].split(";")[0]
    assert "Nothing was imported" in message


def test_missing_required_columns_are_all_named(tmp_path: Path) -> None:
    path = write(tmp_path, "missing.csv", "amount\n10\n")
    with pytest.raises(DataFileError, match=r"required column\(s\) name, reference;"):
        read(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", "")
    with pytest.raises(DataFileError, match="empty"):
        read(path)


def test_a_file_of_blank_lines_is_refused_as_empty(tmp_path: Path) -> None:
    """Guards the skipping of blank lines before the header from going past the end."""
    path = write(tmp_path, "blank.csv", "\r\n\n  \n")
    with pytest.raises(DataFileError, match="empty"):
        read(path)


def test_blank_lines_before_the_header_are_skipped_and_counted(tmp_path: Path) -> None:
    """The header on a spreadsheet's row 3: its rows are numbered from there, and a row
    after a quoted line break names its line."""
    path = write(
        tmp_path,
        "late.csv",
        '\r\n \r\nreference,name\r\nA-1,Ana\r\nA-2,"Bo\r\nB"\r\nA-3,Cy\r\nA-4\r\n',
    )
    rows = read(path)
    assert [(r.number, r.line, r.values["reference"]) for r in rows] == [
        (4, None, "A-1"), (5, None, "A-2"), (6, 7, "A-3"), (7, 8, "A-4"),
    ]  # fmt: skip
    assert rows[3].error == "has 1 cells where the header has 2 columns"


def test_duplicated_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", "reference,name,Name\nA-1,a,b\n")
    with pytest.raises(DataFileError, match="name"):
        read(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        read(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("delimiter", "row"),
    [
        (",", "A-1,Ana Pérez,1234.56"),
        (";", "A-1;Ana Pérez;1.234,56"),
        ("\t", "A-1\tAna Pérez\t1,234.56"),
    ],
)
def test_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str, row: str) -> None:
    header = delimiter.join(["reference", "name", "amount"])
    path = write(tmp_path, "rows.csv", f"{header}\n{row}\n")
    rows = read(path)
    assert len(rows) == 1
    assert rows[0].error is None
    assert rows[0].values == {
        "reference": "A-1",
        "name": "Ana Pérez",
        "amount": row.split(delimiter)[2],
    }


def test_headers_are_normalized(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", " Reference ,NAME,Due Date,due-date-2\nA-1,Ana,2026-01-01,x\n")
    with open_rows(path, "csv", required=REQUIRED, known=KNOWN) as source:
        assert source.columns == ["reference", "name", "due_date", "due_date_2"]
        rows = list(source)
    assert rows[0].values["due_date"] == "2026-01-01"


def test_unknown_columns_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", "reference,name,Favourite Colour,amount,notes\nA-1,Ana,b,1,n\n")
    with open_rows(path, "csv", required=REQUIRED, known=KNOWN) as source:
        assert source.unknown_columns == {"favourite_colour", "notes"}
        assert len(list(source)) == 1


# --- CSV rows and their numbers --------------------------------------------------------------


def test_blank_lines_are_skipped_and_rows_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "blank.csv",
        "reference,name\r\n\r\nA-1,Ana\r\n,\r\n   \r\nA-2,Bo\r\n\r\n",
    )
    rows = read(path)
    assert [(row.number, row.values["reference"]) for row in rows] == [(3, "A-1"), (6, "A-2")]
    assert all(row.error is None for row in rows)


def test_rows_after_a_quoted_line_break_keep_the_spreadsheets_number_and_name_their_line(
    tmp_path: Path,
) -> None:
    content = 'reference,name\nA-1,"Ana\nPérez"\nA-2,Bo\nA-3,"x\n\ny"\nA-4,Cy\n'
    rows = read(write(tmp_path, "q.csv", content))
    # A spreadsheet shows one row per record; the line each starts on is kept where it differs.
    assert [(row.number, row.line, row.values["reference"]) for row in rows] == [
        (2, None, "A-1"),
        (3, 4, "A-2"),
        (4, 5, "A-3"),
        (5, 8, "A-4"),
    ]
    assert rows[0].values["name"] == "Ana\nPérez"
    assert rows[2].values["name"] == "x\n\ny"


def test_a_quote_left_open_in_the_last_column_is_reported_with_every_line_to_the_end(
    tmp_path: Path,
) -> None:
    content = 'reference,name,amount\nA-0,Al,1\nA-1,Ana,"open\nA-2,Bo,2\nA-3,Cy,3\n'
    rows = read(write(tmp_path, "open.csv", content))
    good, swallowing = rows
    assert good == RawRow(2, {"reference": "A-0", "name": "Al", "amount": "1"},
                          cells=("A-0", "Al", "1"))  # fmt: skip
    assert swallowing.number == 3 and swallowing.values == {}
    assert swallowing.error == (
        "has a quote left open: it runs from line 3 to the end of the file (line 5), "
        "and none of these lines is imported"
    )
    assert swallowing.text == 'A-1,Ana,"open\nA-2,Bo,2\nA-3,Cy,3\n'


@pytest.mark.parametrize("end", ["\n", ""])
def test_a_quote_left_open_on_the_last_line_is_reported(tmp_path: Path, end: str) -> None:
    rows = read(write(tmp_path, "open.csv", f'reference,name\nA-1,"Ana{end}'))
    assert [(row.number, row.error is not None) for row in rows] == [(2, True)]


@pytest.mark.parametrize(
    ("header", "cell"),
    [
        ("reference,name,amount", "12 Main St, Apt 4\nBoston, MA, 02110"),
        ("reference,name,notes", "check 4411\nfrom Jane, thanks, rest in May"),
        ("reference,name,balance,due_date,notes", "called twice\nsaid: a, b, c, d, e"),
    ],
)
def test_a_quoted_cell_whose_later_lines_hold_delimiters_reads_whole(
    tmp_path: Path, header: str, cell: str
) -> None:
    """An address or a memo on several lines, commas and all, is one cell: a line of it
    is not taken for a row a quote left open swallowed."""
    width = header.count(",")
    first = ",".join(["x"] * (width - 1))
    content = f'{header}\nA-1,{first},"{cell}"\nA-2,{",".join(["y"] * width)}\n'
    rows = read(write(tmp_path, "cells.csv", content))
    assert [row.error for row in rows] == [None, None]
    assert rows[0].values[header.split(",")[-1]] == cell


@pytest.mark.parametrize("end", ["\n", ""])
def test_a_quoted_cell_with_line_breaks_in_the_last_record_still_reads(
    tmp_path: Path, end: str
) -> None:
    content = f'reference,name,amount\nA-1,Ana,1\nA-2,Bo,"12 Main St, Apt 4\nBoston, MA"{end}'
    rows = read(write(tmp_path, "address.csv", content))
    assert [row.error for row in rows] == [None, None]
    assert rows[1].values["amount"] == "12 Main St, Apt 4\nBoston, MA"


def test_wrong_number_of_cells_yields_an_error_row(tmp_path: Path) -> None:
    content = "reference,name,amount\nA-1,Ana\nA-2,Bo,1,extra\nA-3,Cy,2\n"
    rows = read(write(tmp_path, "cells.csv", content))
    assert [row.number for row in rows] == [2, 3, 4]
    short, long_, good = rows
    assert short.error is not None and "2 cells" in short.error and "3 columns" in short.error
    assert short.values == {"reference": "A-1", "name": "Ana"}
    assert long_.error is not None and "4 cells" in long_.error
    assert good.error is None
    assert good.values == {"reference": "A-3", "name": "Cy", "amount": "2"}


def test_row_source_reports_its_size_and_is_iterated_once(tmp_path: Path) -> None:
    path = write(tmp_path, "once.csv", "reference,name\nA-1,Ana\n")
    with open_rows(path, "csv", required=REQUIRED, known=KNOWN) as source:
        assert source.bytes_total == path.stat().st_size
        assert [row.number for row in source] == [2]
        with pytest.raises(AssertionError):
            iter(source)


# --- JSON Lines ------------------------------------------------------------------------------


def test_json_lines_numbers_are_exact_decimals(tmp_path: Path) -> None:
    content = '{"reference": "A-1", "amount": 19.99, "count": 3}\n{"Due Date": "2026-01-01"}\n'
    rows = read(write(tmp_path, "rows.jsonl", content), "jsonl")
    first = rows[0].values
    assert first["amount"] == Decimal("19.99")
    assert isinstance(first["amount"], Decimal)
    assert not isinstance(first["amount"], float)
    assert first["count"] == 3
    assert rows[1].values == {"due_date": "2026-01-01"}


def test_json_lines_bad_lines_yield_error_rows_with_line_numbers(tmp_path: Path) -> None:
    content = (
        '{"reference": "A-1"}\n'
        "\n"
        "{not json\n"
        '["reference", "A-2"]\n'
        '"just a string"\n'
        '{"reference": "A-3"}\n'
    )
    rows = read(write(tmp_path, "bad.jsonl", content), "jsonl")
    assert [row.number for row in rows] == [1, 3, 4, 5, 6]
    ok1, invalid, array, string, ok2 = rows
    assert ok1.error is None and ok1.values == {"reference": "A-1"}
    assert invalid.error is not None and "not valid JSON" in invalid.error
    assert invalid.values == {}
    assert array.error == "is not a JSON object"
    assert string.error == "is not a JSON object"
    assert ok2.error is None and ok2.values == {"reference": "A-3"}


def test_json_lines_unknown_keys_are_reported(tmp_path: Path) -> None:
    content = '{"reference": "A-1", "Colour": "red"}\n{"name": "Bo", "extra": 1}\n'
    path = write(tmp_path, "u.jsonl", content)
    with open_rows(path, "jsonl", required=frozenset(), known=KNOWN) as source:
        assert len(list(source)) == 2
        assert source.unknown_columns == {"colour", "extra"}


# --- format detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("accounts.csv", None, "csv"),
        ("ACCOUNTS.CSV", None, "csv"),
        ("accounts.tsv", None, "csv"),
        ("accounts.txt", None, "csv"),
        ("accounts.jsonl", None, "jsonl"),
        ("accounts.ndjson", None, "jsonl"),
        ("accounts.json", None, "jsonl"),
        ("accounts.csv", "jsonl", "jsonl"),
        ("accounts.jsonl", "CSV", "csv"),
        ("accounts.dat", "csv", "csv"),
        ("accounts", "jsonl", "jsonl"),
    ],
)
def test_detect_format(name: str, explicit: str | None, expected: str) -> None:
    assert detect_format(Path(name), explicit) == expected


@pytest.mark.parametrize(
    ("name", "explicit", "said"),
    [
        ("accounts.xlsx", None, "accounts.xlsx: cannot tell the format from the name"),
        ("accounts", None, "accounts: cannot tell the format from the name"),
        # An unknown --format is blamed, not the file's name, which says csv.
        ("accounts.csv", "xml", "--format 'xml': use csv or jsonl"),
        ("a.csv", "xlsx", "--format 'xlsx': use csv or jsonl"),
    ],
)
def test_detect_format_refuses_unknown(name: str, explicit: str | None, said: str) -> None:
    with pytest.raises(DataFileError) as refused:
        detect_format(Path(name), explicit)
    assert str(refused.value).startswith(said)
