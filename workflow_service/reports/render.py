"""Rendering a report as CSV (csv module), XLSX (openpyxl) or PDF (reportlab).

Every text cell of CSV and XLSX goes through :func:`workflow_service.storage.cells.neutralise`
(policy titles and owners are tenant input and could hold formulas). The PDF gets a
title, the filters, the period, the table and a bar chart (reportlab.graphics); text
in it is escaped, as reportlab's paragraphs read markup.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from workflow_service.reports.data import ReportData
from workflow_service.storage.cells import neutralise_row

#: Rows of the PDF table (a PDF is read, not processed: the CSV or XLSX has them all).
PDF_MAX_ROWS = 2000


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_csv(report: ReportData, out) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> None:
        out.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()

    writer.writerow(report.columns)
    for index, row in enumerate(report.rows, 1):
        writer.writerow(neutralise_row(_text(v) for v in row))
        if index % 500 == 0:
            flush()
    flush()


def _text(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def write_xlsx(report: ReportData, out) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Report")
    sheet.append(report.columns)
    for row in report.rows:
        sheet.append(neutralise_row(_cell(v) for v in row))
    about = book.create_sheet("About")
    about.append(["report", report.kind])
    about.append(["title", report.title])
    about.append(["period", report.period])
    about.append(["generated_at", report.generated_at.replace(microsecond=0)])
    for name, value in report.filters.items():
        about.append(neutralise_row([f"filter {name}", str(value)]))
    buffer = io.BytesIO()
    book.save(buffer)
    out.write(buffer.getvalue())


def write_pdf(report: ReportData, out) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("cell", fontSize=8, leading=10)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        title=report.title,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    filters = ", ".join(f"{k} = {v}" for k, v in report.filters.items()) or "none"
    story: list[Any] = [
        Paragraph(escape(report.title), styles["Title"]),
        Paragraph(f"<b>Filters:</b> {escape(filters)}", styles["BodyText"]),
        Paragraph(f"<b>Period:</b> {escape(report.period)}", styles["BodyText"]),
        Paragraph(
            f"<b>Generated:</b> {report.generated_at.replace(microsecond=0).isoformat()}Z",
            styles["BodyText"],
        ),
        Spacer(1, 6 * mm),
    ]
    if report.chart is not None and report.chart.labels:
        story += [_chart(report), Spacer(1, 6 * mm)]
    shown = report.rows[:PDF_MAX_ROWS]
    data = [[Paragraph(escape(c), small) for c in report.columns]]
    data += [[Paragraph(escape(str(_text(v))), small) for v in row] for row in shown]
    table = Table(data, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(table)
    if not report.rows:
        story.append(Paragraph("No rows match these filters.", styles["BodyText"]))
    if len(report.rows) > len(shown):
        story.append(
            Paragraph(
                f"The first {len(shown)} of {len(report.rows)} rows are shown; the CSV "
                "or XLSX format has them all.",
                styles["BodyText"],
            )
        )
    doc.build(story)
    out.write(buffer.getvalue())


def _chart(report: ReportData):
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    chart_data = report.chart
    assert chart_data is not None
    drawing = Drawing(480, 200)
    drawing.add(String(0, 188, chart_data.title, fontSize=10))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 380, 140
    chart.data = [tuple(float(v) for v in values) for values in chart_data.series.values()]
    chart.categoryAxis.categoryNames = [label[:14] for label in chart_data.labels]
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    palette = [colors.HexColor("#4c72b0"), colors.HexColor("#dd8452"), colors.HexColor("#55a868")]
    for index in range(len(chart.data)):
        chart.bars[index].fillColor = palette[index % len(palette)]
    drawing.add(chart)
    if len(chart_data.series) > 1:
        legend = Legend()
        legend.x, legend.y = 430, 160
        legend.fontSize = 8
        legend.colorNamePairs = [
            (palette[i % len(palette)], name) for i, name in enumerate(chart_data.series)
        ]
        drawing.add(legend)
    return drawing


WRITERS = {"csv": write_csv, "xlsx": write_xlsx, "pdf": write_pdf}
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "pdf": "pdf"}


def render(report: ReportData, fmt: str, out) -> None:
    WRITERS[fmt](report, out)
