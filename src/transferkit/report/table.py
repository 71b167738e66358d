"""One table model, rendered twice: the same rows become an HTML table and a Markdown table, so the two never
drift apart.

Example:
    >>> t = Table(["method", Column("accuracy", "pct")], [["protonet", 0.912], ["simpleshot", 0.801]], bold=[0])
    >>> print(t.markdown())
    | method | accuracy |
    |---|---:|
    | **protonet** | **91.2%** |
    | simpleshot | 80.1% |
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape


@dataclass(frozen=True)
class Column:
    """A column: its header and how its values are written ('text', 'pct', 'pm' = (value, spread) in percent,
    'int', 's' = seconds, 'g' = a short number). Text is left-aligned, numbers right-aligned."""
    name: str
    kind: str = "text"

    def format(self, v) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "-"
        if self.kind == "pct":
            return f"{v:.1%}"
        if self.kind == "pm":
            value, spread = v if isinstance(v, (tuple, list)) else (v, None)
            return "-" if value is None else f"{value:.1%}" + (f" ± {spread:.1%}" if spread is not None else "")
        if self.kind == "int":
            return f"{int(v):,}"
        if self.kind == "s":
            return f"{v:.1f}"
        if self.kind == "g":
            return f"{v:.4g}"
        return str(v)

    @property
    def left(self) -> bool:
        return self.kind == "text"


@dataclass
class Table:
    """Rows of values under ``columns`` (names or :class:`Column`); ``bold``: indices of rows to set in bold (the
    winner, or the tied candidates)."""
    columns: list
    rows: list
    bold: list = field(default_factory=list)

    def __post_init__(self):
        self.columns = [c if isinstance(c, Column) else Column(str(c)) for c in self.columns]

    def cells(self) -> list[list[str]]:
        return [[c.format(v) for c, v in zip(self.columns, row)] for row in self.rows]

    def html(self) -> str:
        def cls(c):
            return " class=l" if c.left else ""

        head = "".join(f"<th{cls(c)}>{escape(c.name)}</th>" for c in self.columns)
        body = "".join(
            f"<tr{' class=best' if i in self.bold else ''}>"
            + "".join(f"<td{cls(c)}>{escape(v)}</td>" for c, v in zip(self.columns, row)) + "</tr>"
            for i, row in enumerate(self.cells()))
        return f"<table><tr>{head}</tr>{body}</table>"

    def markdown(self) -> str:
        def cell(v: str, bold: bool) -> str:
            v = v.replace("|", "\\|").replace("\n", " ")
            return f"**{v}**" if bold and v != "-" else v

        lines = ["| " + " | ".join(c.name for c in self.columns) + " |",
                 "|" + "".join("---|" if c.left else "---:|" for c in self.columns)]
        lines += ["| " + " | ".join(cell(v, i in self.bold) for v in row) + " |" for i, row in enumerate(self.cells())]
        return "\n".join(lines)
