"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are.

Each benchmark script owns a section between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers and
rewrites only that, so the page is always the output of the committed scripts.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nEvery number on this page is written by a script in `benchmarks/`; "
          "rerun the script to refresh its section.\n")


def hardware() -> str:
    """A one-line description of the machine a benchmark ran on."""
    import os

    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}"


def cpu_seconds(*who: int) -> float:
    """CPU seconds (user + system, every thread) used so far by ``resource.RUSAGE_SELF`` (the default) and/or
    ``RUSAGE_CHILDREN`` (the waited-for child processes), summed."""
    import resource

    usage = [resource.getrusage(w) for w in who or (resource.RUSAGE_SELF,)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def write_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or append) section ``name`` of ``doc`` (default docs/benchmarks.md) with ``markdown``."""
    text = doc.read_text() if doc.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(text)


def publish(name: str, markdown: str, write: bool = True) -> None:
    """Print section ``name`` and, unless ``write`` is false (a script's ``--no-write``), write it to the page."""
    print(markdown)
    if write:
        write_section(name, markdown)
