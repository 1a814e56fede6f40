"""The first sheet of every XLSX export: the executive summary of the export's range, with
native Excel charts (monthly signups, monthly revenue, seasonal conversion by month).

The figures are the ones GET /v1/metrics answers for the same range at month granularity: the
headline block is its `totals` (and `seasonal` for peak/off-peak), the monthly table its periods.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from success_metrics.exports.writers import (
    MONEY_FORMAT,
    column_width,
    print_one_page_wide,
    shown_width,
)

TITLE = "Summary"
MONTHLY_HEADER_ROW = 4


def _value(metric: Any) -> Any:
    """A plain cell value: a ratio's value, money as a number, None stays empty."""
    if isinstance(metric, dict):
        metric = metric.get("value")
    if isinstance(metric, str):
        return float(Decimal(metric))
    return metric


def headline(result: dict[str, Any]) -> list[tuple[str, Any, str | None]]:
    """(label, value, number format) rows of the range as a whole."""
    totals = result["totals"]
    seasonal = result["seasonal"]
    rows: list[tuple[str, Any, str | None]] = [
        ("Signups", totals["signups"]["total"], None),
        ("Trials started", totals["trials_started"], None),
        ("New paying suppliers", totals["new_paying_suppliers"], None),
        ("Trial-to-paid", _value(totals["trial_to_paid"]), "0.0%"),
        ("K-factor", _value(totals["k_factor"]), "0.00"),
        ("Invites per new user", totals["k_factor"]["invites_per_new_user"], "0.00"),
        ("Invite conversion", totals["k_factor"]["invite_conversion"], "0.0%"),
        ("Milestones per couple", totals["milestone_completion"]["milestones_per_couple"], "0.00"),
        *(
            (f"Milestone completed: {name.replace('_', ' ')}", _value(share), "0.0%")
            for name, share in totals["milestone_completion"]["by_milestone"].items()
        ),
        ("Sessions", totals["sessions"], None),
        ("Seasonal conversion, peak", _value(seasonal["peak"]), "0.0%"),
        ("Seasonal conversion, off-peak", _value(seasonal["off_peak"]), "0.0%"),
    ]
    for currency, money in sorted(totals["money"].items()):
        rows += [
            (f"Revenue ({currency})", _value(money["revenue"]), MONEY_FORMAT),
            (f"Marketing spend ({currency})", _value(money["marketing_spend"]), MONEY_FORMAT),
            (f"CAC ({currency})", _value(money["cac"]), MONEY_FORMAT),
            (f"CLV ({currency})", _value(money["clv"]), MONEY_FORMAT),
        ]
        if "mrr_end" in money:
            rows += [
                (f"MRR at the end ({currency})", _value(money["mrr_end"]), MONEY_FORMAT),
                (
                    f"Net revenue retention ({currency})",
                    _value(money["net_revenue_retention"]),
                    "0.0%",
                ),
                (f"Net MRR churn ({currency})", _value(money["net_mrr_churn"]), "0.0%"),
                (f"Quick ratio ({currency})", _value(money["quick_ratio"]), "0.00"),
                (f"LTV ({currency})", _value(money["ltv"]), MONEY_FORMAT),
                (f"CAC payback, months ({currency})", _value(money["cac_payback_months"]), "0.0"),
            ]
    return rows


def currencies(result: dict[str, Any]) -> list[str]:
    found = {cur for p in result["periods"] for cur in p["metrics"]["money"]}
    return sorted(found)


def monthly(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The monthly table: header and one row per month."""
    money = currencies(result)
    header = ["Month", "Signups", "New paying suppliers"]
    header += [f"Revenue ({cur})" for cur in money]
    header += ["Seasonal conversion"]
    by_month = result["seasonal"]["by_month"]
    rows = []
    for period in result["periods"]:
        metrics = period["metrics"]
        row: list[Any] = [
            period["period"],
            metrics["signups"]["total"],
            metrics["new_paying_suppliers"],
        ]
        for cur in money:
            block = metrics["money"].get(cur)
            row.append(_value(block["revenue"]) if block else 0.0)
        row.append(_value(by_month.get(period["period"])))
        rows.append(row)
    return header, rows


def add(workbook: Any, result: dict[str, Any]) -> None:
    """Create the Summary sheet (call before any data sheet so it comes first)."""
    # openpyxl loads only for XLSX work (cold start)
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = workbook.create_sheet(TITLE)
    bold = Font(bold=True)

    def cell(value: Any, number_format: str | None = None, strong: bool = False) -> Any:
        c = WriteOnlyCell(sheet, value=value)
        if number_format:
            c.number_format = number_format
        if strong:
            c.font = bold
        return c

    header, rows = monthly(result)
    facts = headline(result)
    # Monthly table on the left (rows 4..), headline figures to its right; charts below.
    grid: list[list[Any]] = [
        [cell("Success metrics - executive summary", strong=True)],
        [cell("Range"), f"{result['from']} to {result['to']}"],
        [],
    ]
    gap = ["", ""]
    width = len(header)
    lines = max(len(rows) + 1, len(facts) + 1)
    for index in range(lines):
        line: list[Any] = []
        if index == 0:
            line += [cell(h, strong=True) for h in header]
        elif index <= len(rows):
            values = rows[index - 1]
            formats = [None, None, None] + [MONEY_FORMAT] * (width - 4) + ["0.0%"]
            line += [cell(v, f) for v, f in zip(values, formats, strict=True)]
        else:
            line += [None] * width
        line += gap
        if index == 0:
            line += [cell("Figure", strong=True), cell("Value", strong=True)]
        elif index <= len(facts):
            label, value, number_format = facts[index - 1]
            line += [label, cell(value, number_format)]
        grid.append(line)

    anchor_row = MONTHLY_HEADER_ROW + lines + 2
    # Below the charts (two rows of them, 18 rows each), so that nothing is drawn over it.
    table_row = anchor_row + 37
    movements = mrr_movements(result) if rows else None
    if movements is not None:
        currency, table = movements
        grid += [[] for _ in range(3 + lines, table_row - 1)]
        grid.append([cell(f"MRR movements ({currency})", strong=True)])
        grid.append([cell(h, strong=True) for h in MOVEMENT_HEADER])
        grid += [[values[0], *(cell(v, MONEY_FORMAT) for v in values[1:])] for values in table]

    # Set before the first row is written (the sheet is write-only).
    columns = _fit_columns(sheet, grid[2:])  # the title and the range may overflow: not counted
    sheet.freeze_panes = f"A{MONTHLY_HEADER_ROW + 1}"  # the title, the range and the header
    print_one_page_wide(sheet, f"{MONTHLY_HEADER_ROW}:{MONTHLY_HEADER_ROW}")
    last_row = max(len(grid), anchor_row + 36 if rows else 0)
    last_column = max(columns, _chart_end(sheet, 10) if rows else 0)
    sheet.print_area = f"A1:{get_column_letter(last_column)}{last_row}"
    for line in grid:
        sheet.append(line)

    if not rows:
        return
    first, last = MONTHLY_HEADER_ROW + 1, MONTHLY_HEADER_ROW + len(rows)
    months = Reference(sheet, min_col=1, min_row=first, max_row=last)

    signups = BarChart()
    signups.title = "Signups by month"
    signups.y_axis.title = "Signups"
    signups.add_data(
        Reference(sheet, min_col=2, min_row=MONTHLY_HEADER_ROW, max_row=last), titles_from_data=True
    )
    signups.set_categories(months)
    sheet.add_chart(signups, f"A{anchor_row}")

    if width > 4:
        revenue = LineChart()
        revenue.title = "Revenue by month"
        revenue.y_axis.title = "Revenue"
        revenue.add_data(
            Reference(
                sheet, min_col=4, max_col=width - 1, min_row=MONTHLY_HEADER_ROW, max_row=last
            ),
            titles_from_data=True,
        )
        revenue.set_categories(months)
        sheet.add_chart(revenue, f"J{anchor_row}")

    conversion = BarChart()
    conversion.title = "Seasonal conversion (vendor booked / searched) by month"
    conversion.y_axis.number_format = "0%"
    conversion.add_data(
        Reference(sheet, min_col=width, min_row=MONTHLY_HEADER_ROW, max_row=last),
        titles_from_data=True,
    )
    conversion.set_categories(months)
    sheet.add_chart(conversion, f"A{anchor_row + 18}")

    if movements is None:
        return
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = f"MRR movements by month ({currency})"
    chart.y_axis.title = currency
    chart.add_data(
        Reference(
            sheet, min_col=2, max_col=6, min_row=table_row + 1, max_row=table_row + 1 + len(table)
        ),
        titles_from_data=True,
    )
    chart.set_categories(
        Reference(sheet, min_col=1, min_row=table_row + 2, max_row=table_row + 1 + len(table))
    )
    sheet.add_chart(chart, f"J{anchor_row + 18}")


DEFAULT_WIDTH = 8.43  # Excel's default column width, in characters
CHART_PIXELS = 15 / 2.54 * 96  # openpyxl's default chart: 15 cm wide


def _fit_columns(sheet: Any, grid: list[list[Any]]) -> int:
    """Give every column the width its widest cell shows (header, label or formatted figure);
    returns how many columns hold anything."""
    from openpyxl.utils import get_column_letter

    widest: dict[int, float] = {}
    for line in grid:
        for index, value in enumerate(line, 1):
            shown = getattr(value, "value", value)
            if shown in (None, ""):
                continue
            strong = bool(getattr(getattr(value, "font", None), "b", False))
            fit = column_width(shown_width(shown, getattr(value, "number_format", None)), strong)
            widest[index] = max(widest.get(index, 0.0), fit)
    for index, fit in widest.items():
        sheet.column_dimensions[get_column_letter(index)].width = max(fit, DEFAULT_WIDTH)
    return max(widest, default=1)


def _pixels(characters: float) -> float:
    return int(characters * 7 + 5)  # Excel's conversion for the default font (Calibri 11)


def _chart_end(sheet: Any, first_column: int) -> int:
    """The last column a default-sized chart anchored at `first_column` reaches."""
    from openpyxl.utils import get_column_letter

    column, covered = first_column, 0.0
    while True:
        letter = get_column_letter(column)
        # Not `column_dimensions[letter]` for a column left alone: that would create it.
        known = sheet.column_dimensions[letter].width if letter in sheet.column_dimensions else 0
        covered += _pixels(known or DEFAULT_WIDTH)
        if covered >= CHART_PIXELS:
            return column
        column += 1


MOVEMENT_HEADER = ("Month", "New", "Expansion", "Contraction", "Churn", "Reactivation", "MRR")


def mrr_movements(result: dict[str, Any]) -> tuple[str, list[list[Any]]] | None:
    """The monthly MRR movements of the first currency that has any: (currency, rows of
    month, new, expansion, contraction, churn, reactivation, MRR at the end)."""
    for currency in currencies(result):
        rows = []
        for period in result["periods"]:
            money = period["metrics"]["money"].get(currency) or {}
            moves = money.get("mrr_movements") or {}
            rows.append(
                [
                    period["period"],
                    *(float(Decimal(moves.get(k, "0"))) for k in MOVEMENT_NAMES),
                    float(Decimal(money.get("mrr_end", "0"))),
                ]
            )
        if any(any(r[1:]) for r in rows):
            return currency, rows
    return None


MOVEMENT_NAMES = ("new", "expansion", "contraction", "churn", "reactivation")
