"""A spinner on stderr for long steps that report what they are doing, not how far."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["steps"]


@contextmanager
def steps(label: str, console: Console) -> Iterator[Callable[[str], None]]:
    """Show a spinner labelled `label`; yield a function that replaces the label."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda message: progress.update(task, description=message)
