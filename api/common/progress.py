"""The progress bar every long CLI command shows (seeding, exports, health, audit checks)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(console: Console, *, label_width: int | None = None, transient: bool = False) -> Progress:
    """A bar per task: its label, the bar, done/total and the time taken so far."""
    label = "[bold]{task.description" + (f":<{label_width}" if label_width else "") + "}"
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=transient
    )
