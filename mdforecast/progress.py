"""Progress on stderr (results go to stdout, so pipelines stay clean): a rich bar on a terminal; in a log file
or a pipe, nothing, or with ``log_every`` one line every that many units (count, rate, ETA)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

__all__ = ["progress_bar"]


class _Task:
    def __init__(self, progress=None, task_id=None) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)


class _Lines(_Task):
    """Progress as lines on stderr: ``training: 40/320 samples (12 %), 3.1 samples/s, ETA 0:01:30``, one each
    time the count passes a multiple of ``every``."""

    def __init__(self, description: str, total: float | None, unit: str, every: float) -> None:
        super().__init__()
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.done, self.start = 0.0, time.perf_counter()

    def advance(self, n: float = 1) -> None:
        before, self.done = self.done, self.done + n
        if self.done // self.every == before // self.every:
            return
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        text = f"{self.description}: {self.done:,.0f}"
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta < 86400 * 365 else "?"
            text += (f"/{self.total:,.0f} {self.unit} ({100 * self.done / self.total:.0f} %), "
                     f"{rate:,.3g} {self.unit}/s, ETA {eta_text}")
        else:
            text += f" {self.unit}, {rate:,.3g} {self.unit}/s"
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, *, enabled: bool = True, unit: str = "frames",
                 log_every: float | None = None) -> Iterator[_Task]:
    """A rich progress bar on stderr (count, rate, elapsed, ETA); a silent stand-in when ``enabled`` is False.
    When stderr is not a terminal (a log file, a pipe) there is no bar; with ``log_every`` there is a line
    every ``log_every`` units instead."""
    if not enabled:
        yield _Task()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    console = Console(stderr=True)
    if not console.is_terminal:
        yield _Lines(description, total, unit, log_every) if log_every else _Task()
        return

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s", style="progress.data.speed")

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
    with progress:
        yield _Task(progress, progress.add_task(description, total=total))
