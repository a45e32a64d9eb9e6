"""bench/benchdocs.py: one benchmark's section of docs/benchmarks.md, and its footer."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

import benchdocs

WRITERS = 4
ROUNDS = 30


def section(name: str, body: str) -> str:
    start, end = benchdocs.markers(name)
    return f"{start}\n{body}\n{end}\n"


def test_docs_file_is_created_when_missing_then_updated_in_place(tmp_path: Path) -> None:
    docs = tmp_path / "sub" / "benchmarks.md"
    first = section("bench_a", "figures")
    benchdocs.update_docs(docs, first)
    assert docs.read_text() == benchdocs.DOCS_INTRO + "\n" + first
    benchdocs.update_docs(docs, section("bench_b", "other figures"))
    benchdocs.update_docs(docs, section("bench_a", "new figures"))
    assert docs.read_text() == (
        benchdocs.DOCS_INTRO
        + "\n"
        + section("bench_a", "new figures")
        + "\n"
        + section("bench_b", "other figures")
    )
    # No temporary file is left; the lock file stays (removing it would race a waiting writer).
    assert sorted(p.name for p in docs.parent.iterdir()) == [".benchmarks.md.lock", "benchmarks.md"]


def test_only_the_named_section_changes(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_a:start -->\nstale\n<!-- bench_a:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    docs.chmod(0o640)
    benchdocs.update_docs(docs, section("bench_a", "fresh\n\nfigures"))
    assert docs.read_text() == (
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_a:start -->\nfresh\n\nfigures\n<!-- bench_a:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    assert docs.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "text",
    [
        "figures\n",
        "<!-- bench_a:start -->\nfigures\n",
        "<!-- bench_a:start -->\nfigures\n<!-- bench_b:end -->\n",
        "intro\n<!-- bench_a:start -->\nfigures\n<!-- bench_a:end -->\n",
    ],
)
def test_a_section_without_its_markers_is_refused(tmp_path: Path, text: str) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("kept\n")
    with pytest.raises(ValueError, match="marker"):
        benchdocs.update_docs(docs, text)
    assert docs.read_text() == "kept\n"


def _write_rounds(docs: Path, name: str, ready: Barrier) -> None:
    ready.wait(timeout=30)
    for n in range(ROUNDS):
        benchdocs.update_docs(docs, section(name, f"{name} round {n}"))


def test_benchmarks_writing_at_once_lose_no_section(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    names = [f"bench_{i}" for i in range(WRITERS)]
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(WRITERS)
    writers = [context.Process(target=_write_rounds, args=(docs, name, ready)) for name in names]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0] * WRITERS
    text = docs.read_text()
    assert text.startswith(benchdocs.DOCS_INTRO)
    for name in names:
        start, end = benchdocs.markers(name)
        assert text.count(start) == text.count(end) == 1
        # The last round of every writer is there: no writer's update was lost.
        assert section(name, f"{name} round {ROUNDS - 1}") in text
    assert sorted(p.name for p in tmp_path.iterdir()) == [".benchmarks.md.lock", "benchmarks.md"]


def test_footer_names_machine_versions_date_and_command(monkeypatch: pytest.MonkeyPatch) -> None:
    script = benchdocs.ROOT / "bench" / "bench_x.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--size", "2 M"])
    lines = benchdocs.footer({"numpy": "9.1", "SQLite": "3.0"})
    machine, _, date, _, command_title, _, fence, command, closing = lines
    assert re.fullmatch(
        r"Machine: \d+ CPUs \(.+\), (\d+\.\d GiB|\?) RAM, \S+ \S+, Python 3\.\d+\.\d+, "
        r"numpy 9\.1, SQLite 3\.0; shared with other work while it ran, so timings are "
        r"indicative\.",
        machine,
    )
    assert re.fullmatch(r"Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", date)
    assert (command_title, fence, closing) == ("Command:", "```", "```")
    nice = os.nice(0)
    prefix = f"nice -n {nice} " if nice else ""
    assert command == prefix + "python bench/bench_x.py --size '2 M'"
    plain = benchdocs.machine_line({}, "lab remark.")
    assert re.fullmatch(r"Machine: .+ RAM, .+, Python 3\.\d+\.\d+; lab remark\.", plain)


def test_human_bytes() -> None:
    assert benchdocs.human_bytes(0) == "0 B"
    assert benchdocs.human_bytes(1023) == "1023 B"
    assert benchdocs.human_bytes(1536) == "1.50 KiB"
    assert benchdocs.human_bytes(5 * 2**30) == "5.00 GiB"
    assert benchdocs.human_bytes(3 * 2**40) == "3072.00 GiB"


def test_publish_prints_and_writes_unless_no_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    benchdocs.add_docs_options(parser)
    assert parser.parse_args([]).docs == benchdocs.DEFAULT_DOCS
    docs = tmp_path / "benchmarks.md"
    text = section("bench_a", "figures")
    benchdocs.publish(text, parser.parse_args(["--docs", str(docs), "--no-docs"]))
    assert capsys.readouterr().out == text + "\n"
    assert not docs.exists()
    benchdocs.publish(text, parser.parse_args(["--docs", str(docs)]))
    assert capsys.readouterr().err == f"updated {docs}\n"
    assert docs.read_text() == benchdocs.DOCS_INTRO + "\n" + text


def test_run_child_reads_the_last_json_line_and_the_childs_own_peak_memory() -> None:
    # The child holds 64 MiB it touches, and imports the package from src/.
    code = (
        "import json, atalaya; block = bytearray(64 * 2**20); "
        "print('progress'); print(json.dumps({'ok': len(block)}))"
    )
    result = benchdocs.run_child([sys.executable, "-c", code], "child")
    assert result["ok"] == 64 * 2**20
    assert result["peak_rss_bytes"] >= 64 * 2**20


def test_run_child_that_fails_stops_the_benchmark_naming_it() -> None:
    with pytest.raises(SystemExit, match="engine sqlite failed with exit status 3"):
        benchdocs.run_child([sys.executable, "-c", "raise SystemExit(3)"], "engine sqlite")


def test_pick_keeps_the_order_given_and_refuses_unknown_or_empty_lists() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    assert benchdocs.pick(parser, " b, a ,", ("a", "b", "c"), "engines") == ["b", "a"]
    for bad in ("a,d", " , "):
        with pytest.raises(SystemExit) as stopped:
            benchdocs.pick(parser, bad, ("a", "b", "c"), "engines")
        assert stopped.value.code == 2
