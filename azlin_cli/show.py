"""What the CLI prints: tables for people (Rich), the API's JSON as it is with --json, errors in
the service's words, and a live progress bar while an operation runs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .api import ApiError

out = Console()
err = Console(stderr=True)

ENDED = ("Succeeded", "Failed")
POLL_SECONDS = 1.0


def as_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def error(problem: ApiError) -> None:
    err.print(f"[bold red]error[/] {problem.code}: {problem.message}", highlight=False)
    for cause in problem.causes:
        err.print(f"  - {cause}", highlight=False)
    if problem.hint:
        err.print(f"  try: {problem.hint}", highlight=False)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
          title: str | None = None) -> None:
    """Rows of the API's JSON objects; `columns` are (heading, key) pairs, a key may be dotted."""
    grid = Table(title=title, header_style="bold")
    for heading, _ in columns:
        grid.add_column(heading)
    for row in rows:
        grid.add_row(*(_text(_pick(row, key)) for _, key in columns))
    out.print(grid)


def fields(value: dict[str, Any], title: str | None = None) -> None:
    """One object: its fields, one per line; lists of objects as tables below."""
    grid = Table(title=title, show_header=False, box=None)
    grid.add_column(style="bold")
    grid.add_column()
    nested = []
    for key, item in value.items():
        if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            nested.append((key, item))
        else:
            grid.add_row(key, _text(item))
    out.print(grid)
    for key, items in nested:
        keys = [k for k in items[0] if not isinstance(items[0][k], (dict, list))]
        table(items, [(k, k) for k in keys], title=key)


def operation_line(operation: dict[str, Any]) -> str:
    step = (operation.get("progress") or {}).get("step") or ""
    line = f"{operation['kind']} {operation['target']}: {operation['status']}"
    return f"{line} ({step})" if step else line


def wait(operation: dict[str, Any], read: Callable[[str], dict[str, Any]], *, quiet: bool) -> dict[str, Any]:
    """Poll until the operation ends, showing its current step. Ctrl-C stops waiting only."""
    try:
        if quiet:
            while operation["status"] not in ENDED:
                time.sleep(POLL_SECONDS)
                operation = read(operation["id"])
            return operation
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(operation_line(operation), total=None)
            while operation["status"] not in ENDED:
                time.sleep(POLL_SECONDS)
                operation = read(operation["id"])
                progress = operation.get("progress") or {}
                bar.update(task, description=operation_line(operation), completed=progress.get("done", 0),
                           total=progress.get("total"))
        return operation
    except KeyboardInterrupt:
        err.print(f"\nStopped waiting; operation {operation['id']} goes on. "
                  f"Follow it with: azlin-storage operations show {operation['id']}", highlight=False)
        raise SystemExit(130) from None


def _pick(row: dict[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)
