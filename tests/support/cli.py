"""Running the `atalaya` command from the tests, in this process or in a child.

`run_atalaya` calls the same `atalaya.cli.main()` the installed entry point
calls, with its own argv, environment, standard streams and working
directory, and returns what a child process would have: exit status, stdout,
stderr. A fresh interpreter pays one to two seconds of start-up and imports
per command on a 2-core machine; in this process a command costs what it does.
`spawn_atalaya` runs the real `python -m atalaya` in a child: the smoke tests
that prove the entry point itself keep using it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

SPAWN_TIMEOUT_S = 120

_build_command = typer.main.get_command

# A traceback instead of the one-line error would change what tests read.
_ALWAYS_UNSET = ("ATALAYA_DEBUG",)

# What an operator's profile sets once: the purpose of the reads (LED art. 25)
# and the recipient of exports. A test's `env` overrides them; None unsets
# them, as the tests of the refusal without a purpose do.
DEFAULT_ENV = {"ATALAYA_PURPOSE": "triage", "ATALAYA_RECIPIENT": "the test suite"}


def _child_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    merged: dict[str, str | None] = {**DEFAULT_ENV, **os.environ, **(env or {})}
    for name in _ALWAYS_UNSET:
        merged.pop(name, None)
    return {k: v for k, v in merged.items() if v is not None}


def spawn_atalaya(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    timeout: float = SPAWN_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """`python -m atalaya ARGS` in a child process; `env` overrides (None unsets)."""
    return subprocess.run(
        [sys.executable, "-m", "atalaya", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_child_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@contextmanager
def _consoles_as_in_a_child() -> Iterator[None]:
    """Give the CLI's rich consoles the settings a child with piped output gets.

    Rich fixes width, colour and interactivity when a console is built, at
    import, from the streams and environment of that moment (a terminal under
    `pytest -s`, a parent's COLUMNS). A child process builds them against
    pipes and its own environment; do the same for the length of one command
    and put the import-time settings back afterwards.
    """
    from atalaya.console import err, out

    fixed_at_import = ("_width", "_height", "_color_system", "no_color", "is_interactive")
    saved = [(console, {k: getattr(console, k) for k in fixed_at_import}) for console in (out, err)]
    columns, lines = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    try:
        for console, _ in saved:
            console._width = int(columns) if columns.isdigit() else None
            console._height = int(lines) if lines.isdigit() else None
            console._color_system = console._detect_color_system()
            console.no_color = os.environ.get("NO_COLOR", "") != ""
            console.is_interactive = console.is_terminal and not console.is_dumb_terminal
        yield
    finally:
        for console, attributes in saved:
            for name, value in attributes.items():
                setattr(console, name, value)


# Typer turns the app into Click commands, reading every function's type
# hints, on each call: a third of a second here, paid once per process by
# the real entry point. Built once per app for the session instead.
_built: dict[typer.main.Typer, Any] = {}


def _command_built_once(typer_instance: typer.main.Typer) -> Any:
    if typer_instance not in _built:
        _built[typer_instance] = _build_command(typer_instance)
    return _built[typer_instance]


@contextmanager
def _engines_disposed() -> Iterator[None]:
    """Dispose of the engines the command opened, as its process exit would.

    The CLI keeps its engine until the process ends; in this process its pool
    would hold connections open (PostgreSQL counts them) until collected.
    """
    opened: list[Engine] = []

    def seen(conn: Connection) -> None:
        if conn.engine not in opened:
            opened.append(conn.engine)

    event.listen(Engine, "engine_connect", seen)
    try:
        yield
    finally:
        event.remove(Engine, "engine_connect", seen)
        for engine in opened:
            engine.dispose()


def run_atalaya(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`atalaya ARGS` in this process; the same result a child would give.

    `stdin` is the whole of standard input (empty when None, as from
    /dev/null); `env` overrides the environment for the command (None
    unsets); `cwd` is its working directory. Output is decoded as a child's
    pipes would be read with `text=True`. What is written to file
    descriptors 1 and 2 directly (by a process the command starts) is not
    captured: such commands, and ones that install signal handlers, are for
    `spawn_atalaya`.
    """
    from atalaya.cli import main

    stdin_bytes = io.BytesIO((stdin or "").encode())
    stdout_bytes, stderr_bytes = io.BytesIO(), io.BytesIO()
    streams = {
        "stdin": _text(stdin_bytes),
        "stdout": _text(stdout_bytes),
        "stderr": _text(stderr_bytes, errors="backslashreplace"),
    }
    code = 0
    with ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        defaults = {k: v for k, v in DEFAULT_ENV.items() if k not in os.environ}
        for name, value in {**defaults, **(env or {}), **dict.fromkeys(_ALWAYS_UNSET)}.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        if cwd is not None:
            patch.chdir(cwd)
        patch.setattr(sys, "argv", ["atalaya", *args])
        for name, stream in streams.items():
            patch.setattr(sys, name, stream)
        patch.setattr(typer.main, "get_command", _command_built_once)
        # Typer installs its hook on each call; a child's would die with it.
        patch.setattr(sys, "excepthook", sys.excepthook)
        stack.enter_context(_consoles_as_in_a_child())
        stack.enter_context(_engines_disposed())
        try:
            main()
        except SystemExit as exc:
            code = _exit_status(exc.code)
        finally:
            for stream in streams.values():
                stream.flush()
    return subprocess.CompletedProcess(
        ["atalaya", *args],
        code,
        _as_text(stdout_bytes.getvalue()),
        _as_text(stderr_bytes.getvalue()),
    )


def _text(buffer: io.BytesIO, errors: str = "strict") -> io.TextIOWrapper:
    # As a child's standard streams on POSIX: UTF-8 (the locale here), lines
    # split at "\n" with nothing translated.
    return io.TextIOWrapper(
        buffer, encoding="utf-8", errors=errors, newline="\n", write_through=True
    )


def _exit_status(code: object) -> int:
    # sys.exit's rules: None is success, an int is the status, anything else
    # is printed to stderr by the interpreter and means 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _as_text(data: bytes) -> str:
    # subprocess.run(text=True) decodes with universal newlines.
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
