"""Tables on stdout that survive pipes: rich tables on a terminal, plain aligned text with every digit elsewhere.

A rich table sent to a file or a pipe is cut to 80 columns (``persiste…``, ``1.878e+…``); so when stdout is
not a terminal, :func:`show` writes each table as plain text, columns separated by two spaces, never cut,
numbers as Python writes them (shortest text that reads back as the same float).
"""

from __future__ import annotations

import dataclasses

import typer

__all__ = ["Table", "show", "number"]


def number(value, *, full: bool = False) -> str:
    """A cell: ``'–'`` for ``None``, floats to 4 significant digits (``full``: every digit), anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return repr(value) if full else f"{value:.4g}"
    return str(value)


@dataclasses.dataclass
class Table:
    """Rows of cells (text or numbers) under ``columns``; ``right``: the columns aligned right."""

    title: str
    columns: list[str]
    caption: str = ""
    right: frozenset[str] = frozenset()
    header: bool = True
    rows: list[tuple[list, bool]] = dataclasses.field(default_factory=list)  # cells, ends a section

    def add_row(self, *cells, end_section: bool = False) -> None:
        self.rows.append((list(cells), end_section))

    def plain(self) -> str:
        """The table as aligned text: title, header, rows (a blank line after each section), caption."""
        cells = [[number(c, full=True).replace("\n", "; ") for c in row] for row, _ in self.rows]
        body = ([list(self.columns)] if self.header else []) + cells
        widths = [max(len(r[i]) for r in body) for i in range(len(self.columns))]

        def line(row: list[str]) -> str:
            return "  ".join(c.rjust(w) if name in self.right else c.ljust(w)
                             for c, w, name in zip(row, widths, self.columns)).rstrip()

        out = [self.title] if self.title else []
        if self.header:
            out += [line(self.columns), "  ".join("-" * w for w in widths)]
        for row, (_, end) in zip(cells, self.rows):
            out.append(line(row))
            if end and row is not cells[-1]:
                out.append("")
        return "\n".join(out + ([self.caption] if self.caption else []))

    def rich(self):
        """The table as a :class:`rich.table.Table` (numbers to 4 significant digits)."""
        from rich.table import Table as RichTable

        table = RichTable(title=self.title or None, caption=self.caption or None, show_header=self.header)
        for name in self.columns:
            table.add_column(name, justify="right" if name in self.right else "left", overflow="fold")
        for row, end in self.rows:
            table.add_row(*(number(c) for c in row), end_section=end)
        return table


def show(*items: Table | str) -> None:
    """Print tables and lines of text to stdout: rich on a terminal, plain text (never cut) otherwise."""
    from rich.console import Console

    console = Console()
    for item in items:
        if console.is_terminal:
            console.print(item.rich() if isinstance(item, Table) else item, markup=False, highlight=False)
        else:
            typer.echo(item.plain() if isinstance(item, Table) else item)
