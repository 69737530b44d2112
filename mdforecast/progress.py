"""Progress bars on stderr (results go to stdout, so pipelines stay clean)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["progress_bar"]


class _Task:
    def __init__(self, progress=None, task_id=None) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, *, enabled: bool = True, unit: str = "frames") -> Iterator[_Task]:
    """A rich progress bar on stderr (count, rate, elapsed, ETA); a silent stand-in when ``enabled`` is False."""
    if not enabled:
        yield _Task()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s", style="progress.data.speed")

    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                        disable=not console.is_terminal)  # no bar in logs and pipes
    with progress:
        yield _Task(progress, progress.add_task(description, total=total))
