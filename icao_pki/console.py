"""Shared conventions of every `icao-pki` command.

One-line errors on stderr and a non-zero exit (2 for bad input or usage, 1 for "checked
and found invalid"), JSON on stdout with `--json`, rich tables otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

EXIT_INVALID = 1
EXIT_ERROR = 2

out = Console()
err = Console(stderr=True)


class CommandError(Exception):
    """An error a command reports in one line and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


@contextmanager
def reporting(*expected: type[BaseException]) -> Iterator[None]:
    """Turn expected exceptions (and `CommandError`) into a one-line message and exit code."""
    try:
        yield
    except CommandError as exc:
        fail(str(exc), exc.exit_code)
    except expected as exc:
        fail(one_line(exc))
    except (OSError, ValueError) as exc:
        fail(one_line(exc))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def read_input_file(path: Path) -> bytes:
    """Read a file the user named, with a clear message when it is missing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory") from None


JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")

Command = Callable[..., Any]
