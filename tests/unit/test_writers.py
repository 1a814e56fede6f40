"""Export writers: round trips, formula neutralising, resumption and empty exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from success_metrics.exports import email, writers

COLUMNS = ["id", "type", "note", "amount"]
TRICKY = [
    {
        "id": "evt_1",
        "type": "payment.succeeded",
        "note": 'Comma, "quotes"\nand a newline',
        "amount": "12.50",
    },
    {"id": "evt_2", "type": "user.signed_up", "note": '=HYPERLINK("http://x")', "amount": None},
    {"id": "evt_3", "type": "custom.ünïcødé", "note": "Mariée à Montréal 💍", "amount": "0.99"},
    {"id": "evt_4", "type": "feature.used", "note": "+44 20 7946 0000", "amount": "-3"},
    {"id": "evt_5", "type": "feature.used", "note": "@SUM(A1:A2)", "amount": "1"},
]


def run(writer: writers.Writer, rows: list[dict[str, Any]]) -> bytes:
    return b"".join(writer.write(r) for r in rows) + writer.finish()


def test_csv_round_trip_with_header_and_neutralised_formulas() -> None:
    data = run(writers.CsvWriter(COLUMNS), TRICKY)

    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))

    assert [r["id"] for r in read] == [r["id"] for r in TRICKY]
    assert read[0]["note"] == TRICKY[0]["note"]
    assert read[1]["note"] == "'" + TRICKY[1]["note"]
    assert read[2]["note"] == TRICKY[2]["note"]
    assert read[3]["note"] == "'+44 20 7946 0000"
    assert read[4]["note"] == "'@SUM(A1:A2)"
    assert read[1]["amount"] == ""


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_formats_round_trip_exactly(fmt: str) -> None:
    data = run(writers.text_writer(fmt, COLUMNS), TRICKY)

    read = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]

    assert read == TRICKY


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_empty_exports_are_valid(fmt: str) -> None:
    data = run(writers.text_writer(fmt, COLUMNS), [])

    if fmt == "csv":
        assert data == b"id,type,note,amount\r\n"
    elif fmt == "json":
        assert json.loads(data) == []
    else:
        assert data == b""


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "id": st.text(max_size=20),
                "type": st.text(max_size=10),
                "note": st.text(max_size=40),
                "amount": st.none() | st.text(max_size=8),
            }
        ),
        max_size=30,
    ),
    cut=st.integers(min_value=0, max_value=30),
    fmt=st.sampled_from(["csv", "json", "ndjson"]),
)
def test_a_resumed_writer_continues_byte_for_byte(
    rows: list[dict[str, Any]], cut: int, fmt: str
) -> None:
    whole = run(writers.text_writer(fmt, COLUMNS), rows)
    cut = min(cut, len(rows))
    first = writers.text_writer(fmt, COLUMNS)
    head = b"".join(first.write(r) for r in rows[:cut])
    resumed = writers.text_writer(fmt, COLUMNS, rows=first.state()["rows"])

    assert head + run(resumed, rows[cut:]) == whole


def test_xlsx_typed_cells_neutralised_text_and_new_sheets() -> None:
    writer = writers.XlsxWriter(["id", "when", "amount", "note"], sheet_rows=2)
    writer.add_sheet("Summary", [["Signups", 12], ["Note", "=1+1"]])
    rows = [
        {
            "id": "e1",
            "when": datetime(2026, 6, 14, 10, 31),
            "amount": Decimal("29.00"),
            "note": "=cmd",
        },
        {"id": "e2", "when": date(2026, 6, 15), "amount": 5, "note": "fine"},
        {"id": "e3", "when": None, "amount": None, "note": "Amélie 💍"},
    ]
    try:
        for row in rows:
            writer.write(row)
        writer.finish()
        book = load_workbook(writer.path, read_only=True)
        assert book.sheetnames == ["Summary", "Data", "Data 2"]
        data = [list(r) for r in book["Data"].iter_rows(values_only=True)]
        assert data[0] == ["id", "when", "amount", "note"]
        assert data[1] == ["e1", datetime(2026, 6, 14, 10, 31), 29.0, "'=cmd"]
        assert [list(r) for r in book["Data 2"].iter_rows(values_only=True)][1] == [
            "e3",
            None,
            None,
            "Amélie 💍",
        ]
        assert [list(r) for r in book["Summary"].iter_rows(values_only=True)][1] == [
            "Note",
            "'=1+1",
        ]
        assert b"".join(writer.chunks(1024)) == open(writer.path, "rb").read()  # noqa: SIM115
    finally:
        writer.close()


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=6),
    fmt=st.sampled_from(["csv", "json", "ndjson"]),
)
def test_unframed_slices_joined_with_glue_equal_one_framed_file(sizes: list[int], fmt: str) -> None:
    rows = [dict(TRICKY[i % len(TRICKY)], id=f"evt_{i}") for i in range(sum(sizes))]
    whole = run(writers.text_writer(fmt, COLUMNS), rows)

    slices, start = [], 0
    for size in sizes:
        slices.append(
            run(writers.text_writer(fmt, COLUMNS, framed=False), rows[start : start + size])
        )
        start += size
    glue = writers.glue(fmt, COLUMNS, [size > 0 for size in sizes])
    joined = b"".join(g + s for g, s in zip(glue, slices, strict=False)) + glue[-1]

    assert joined == whole


def test_csv_cells_of_every_type() -> None:
    row = {
        "id": "evt_1",
        "type": True,
        "note": {"a": "é", "b": [1, 2]},
        "amount": datetime(2026, 6, 1, 12, 30),
    }
    data = run(writers.CsvWriter(COLUMNS), [row, {"id": "-1"}])

    read = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert read[1] == ["evt_1", "true", '{"a":"é","b":[1,2]}', "2026-06-01T12:30:00"]
    assert read[2] == ["'-1", "", "", ""]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (812, "812 bytes"),
        (11_917, "11.6 KB"),
        (3_565_158, "3.4 MB"),
        (1_288_490_189, "1.2 GB"),
        (5 * 1024**4, "5,120.0 GB"),
    ],
)
def test_the_email_gives_a_file_size_as_people_read_it(size: int, text: str) -> None:
    assert email.size_text(size) == text  # a 12 KB summary said "Size: 0.0 MB"
