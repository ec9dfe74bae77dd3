"""How client commands talk to people: tables, JSON/YAML for scripts, prompts, errors on stderr."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, NoReturn, TypeVar

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from kupe.sdk.errors import APIError, ConfigurationError, SDKError

M = TypeVar("M", bound=BaseModel)
# C0, DEL and C1: what a terminal would act on (escape sequences, title changes, clears).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# json.dumps escapes C0 itself; DEL and C1 pass through with ensure_ascii=False.
_JSON_UNESCAPED = re.compile("[\x7f-\x9f]")

EXIT_FAILURE = 1
EXIT_USAGE = 2

PHASE_STYLES = {
    "Running": "green",
    "Active": "green",
    "Pending": "yellow",
    "Provisioning": "cyan",
    "Upgrading": "cyan",
    "Degraded": "dark_orange",
    "Failed": "bold red",
    "Suspended": "red",
    "Terminating": "magenta",
}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class RoleChoice(StrEnum):
    admin = "admin"
    readonly = "readonly"


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
OutputOpt = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people; json or yaml for scripts."),
]


def clean(text: str) -> str:
    """`text` safe to print: each control character becomes U+FFFD, visibly."""
    return _CONTROL.sub("\ufffd", text)


def _clean_data(data: object) -> object:
    if isinstance(data, str):
        return clean(data)
    if isinstance(data, dict):
        return {
            clean(key) if isinstance(key, str) else key: _clean_data(v) for key, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [_clean_data(item) for item in data]
    return data


def cleaned(model: M) -> M:
    """A copy of a server's answer with every string safe to print on a terminal."""
    return type(model).model_validate(_clean_data(model.model_dump(by_alias=True)))


def stdout() -> Console:
    # Not a terminal: don't wrap tables at 80 columns, the reader is a file or a pipe.
    return Console(width=None if sys.stdout.isatty() else 1000, highlight=False)


def render(renderable: RenderableType) -> None:
    """Print a Rich renderable on stdout; into a pipe without colour or trailing blanks."""
    console = stdout()
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def wire(model: BaseModel) -> dict[str, object]:
    """A model as it travels on the wire: camelCase, no nulls."""
    data: dict[str, object] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def dump(data: object, fmt: OutputFormat) -> None:
    """Print JSON or YAML on stdout."""
    if fmt is OutputFormat.yaml:
        # YAML escapes every non-printable character itself ("\e", "\x9B").
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False)
        sys.stdout.write(_JSON_UNESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def show(item: M, fmt: OutputFormat, table: Callable[[M], RenderableType]) -> None:
    """Print one object: `table(item)` for people, else its wire form."""
    if fmt is OutputFormat.table:
        render(table(cleaned(item)))
    else:
        dump(wire(item), fmt)


def show_list(
    items: Sequence[M],
    fmt: OutputFormat,
    table: Callable[[Sequence[M]], Table],
    empty: str = "Nothing found.",
) -> None:
    """Print a list: a table, or `{"items": [...]}` as the API answers it."""
    if fmt is OutputFormat.table:
        if not items:
            note(empty)
            return
        render(table([cleaned(item) for item in items]))
    else:
        dump({"items": [wire(item) for item in items]}, fmt)


def new_table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ignore")
    return table


def details(rows: Sequence[tuple[str, RenderableType | str | None]]) -> Table:
    """A two-column `Key: value` view of one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        if value is not None and value != "":
            grid.add_row(f"{key}:", value if not isinstance(value, str) else Text(value))
    return grid


def phase_text(phase: str) -> Text:
    return Text(phase, style=PHASE_STYLES.get(phase, ""))


def age(moment: datetime, now: datetime | None = None) -> str:
    """A kubectl-style age: 45s, 12m, 5h, 3d."""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def note(message: str) -> None:
    """A message for the person at the terminal, on stderr so stdout stays parseable."""
    typer.echo(clean(message), err=True)


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal unless --yes; a script has no one to answer, so it is not asked."""
    if not yes and sys.stdin.isatty():
        typer.confirm(question, abort=True)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    typer.echo(f"Error: {clean(message)}", err=True)
    raise typer.Exit(code)


def describe(error: SDKError) -> str:
    """The error as one line: the server's message, its code and the request id."""
    extras = []
    if isinstance(error, APIError):
        extras.append(f"HTTP {error.status}")
    if error.code:
        extras.append(error.code)
    if error.field:
        extras.append(f"field {error.field}")
    if error.request_id:
        extras.append(f"request id {error.request_id}")
    suffix = f" ({', '.join(extras)})" if extras else ""
    return f"{error.message}{suffix}"


@contextmanager
def errors_reported() -> Iterator[None]:
    """Turn SDK errors into a message on stderr and an exit code (2 for configuration)."""
    try:
        yield
    except ConfigurationError as exc:
        fail(exc.message, EXIT_USAGE)
    except SDKError as exc:
        fail(describe(exc))
