"""Plumbing shared by the benchmarks: child processes and their sections of docs/benchmarks.md.

`run_child` runs one contender or engine in a process of its own and reads
its JSON result with its own peak memory.

A section runs from `<!-- NAME:start -->` to `<!-- NAME:end -->` (see `markers`)
and ends with `footer()`: the machine, the date and the exact command.
`update_docs` replaces that one section and keeps the rest of the file;
`add_docs_options` and `publish` give every benchmark the same `--docs` and
`--no-docs`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_INTRO = """# Benchmarks

Each section below is written by the benchmark named in its title, with the
machine, the date and the exact command that produced it. Re-run the command
to refresh a section; the other sections are left as they are.
"""
SHARED_MACHINE = "shared with other work while it ran, so timings are indicative."

_SECTION = re.compile(r"(<!-- ([\w.-]+):start -->)\n(?:.*\n)?(<!-- \2:end -->)\n?", re.DOTALL)


def pick(
    parser: argparse.ArgumentParser, value: str, allowed: Iterable[str], what: str
) -> list[str]:
    """The comma-separated names in `value`, each one of `allowed`; else the parser's error."""
    choices = list(allowed)
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    unknown = set(chosen) - set(choices)
    if unknown or not chosen:
        parser.error(f"unknown {what} {sorted(unknown)}: choose from {', '.join(choices)}")
    return chosen


def run_child(cmd: list[str], what: str) -> dict[str, Any]:
    """Run `cmd` with the package (and the tests' helpers) importable; its last stdout line.

    The child prints its result as one JSON object on its last line; stderr
    passes through for progress. `peak_rss_bytes` is added: the child's own
    peak resident memory, which `wait4` reports for it alone (ru_maxrss, KiB
    on Linux), so one contender's data never counts against another.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return result


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of benchmark `name`'s section."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def machine() -> dict[str, str]:
    """CPU count and model, RAM, OS and Python version of this machine."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        found = re.search(r"MemTotal:\s+(\d+)", f.read())
        if found:
            mem = f"{int(found.group(1)) / 2**20:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_line(versions: Mapping[str, str], remark: str = SHARED_MACHINE) -> str:
    """`Machine: …` with `versions` (label -> version, in order) after Python's."""
    info = machine()
    libraries = "".join(f", {label} {version}" for label, version in versions.items())
    return (
        f"Machine: {info['cpus']} CPUs ({info['cpu']}), {info['ram']} RAM, {info['os']}, "
        f"Python {info['python']}{libraries}; {remark}"
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError


def command_line() -> str:
    """The command that is running, as typed from the repository root (with its `nice`)."""
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    return prefix + shlex.join(["python", shown, *sys.argv[1:]])


def footer(versions: Mapping[str, str], remark: str = SHARED_MACHINE) -> list[str]:
    """A section's closing lines, up to its end marker: machine, date, command."""
    return [
        machine_line(versions, remark),
        "",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "Command:",
        "",
        "```",
        command_line(),
        "```",
    ]


def add_docs_options(parser: argparse.ArgumentParser) -> None:
    """`--docs PATH` (default docs/benchmarks.md) and `--no-docs`, as `publish` reads them."""
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="Markdown file to update")
    parser.add_argument("--no-docs", action="store_true", help="print only, write no file")


def publish(section: str, args: argparse.Namespace) -> None:
    """Print `section`, and write it into `args.docs` unless `args.no_docs`."""
    print(section)
    if not args.no_docs:
        update_docs(args.docs, section)
        print(f"updated {args.docs}", file=sys.stderr)


def update_docs(path: Path, section: str) -> None:
    """Replace `section`'s part of `path` (found by its markers), leaving the rest alone.

    Benchmarks may finish at the same time: the read-modify-write holds an
    exclusive lock on a file beside `path`, and the new text replaces the old
    atomically, so no reader sees half a file and no section is lost.
    """
    whole = _SECTION.fullmatch(section)
    if whole is None:
        raise ValueError("a section must run from its start marker to its end marker")
    start, end = whole.group(1), whole.group(3)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else DOCS_INTRO
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        _replace(path, text)


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0o666 less the umask, as a plain write would create it; an existing
    # file keeps its mode.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with open(fd, "w") as f:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(f.fileno(), stat.S_IMODE(path.stat().st_mode))
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
