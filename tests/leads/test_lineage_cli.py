"""`atalaya leads show` on a lead merged away, and a lead's records and history, in-process."""

from __future__ import annotations

import json

from sqlalchemy import Engine
from typer.testing import CliRunner

from atalaya.cli import app
from tests.leads.scenarios import merge_then_split
from tests.support.cli import DEFAULT_ENV


def run(engine: Engine, *args: str) -> tuple[int, str, str]:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["--db", url, *args], env={"COLUMNS": "200", **DEFAULT_ENV})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_show_says_where_a_merged_lead_went_and_shows_every_record(engine: Engine) -> None:
    story = merge_then_split(engine)
    code, out, err = run(engine, "leads", "show", str(story.merged))
    assert code == 0, err
    assert f"lead {story.merged} was merged into lead {story.kept} by build 2" in err
    assert f"showing lead {story.kept}" in err
    assert out.startswith(f"lead {story.kept}: score 60.00")
    assert f"override 80 on lead {story.merged} by nora" in out
    assert "override 60 by ana" in out
    assert f"claimed on lead {story.merged} by Norte (nora)" in out
    assert "claimed by Madrid (ana)" in out
    assert f"lead {story.merged} merged into lead {story.kept}" in out
    assert f"lead {story.split} split from lead {story.kept}" in out

    code, out, err = run(engine, "leads", "show", str(story.merged), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["id"] == story.kept
    assert record["asked_for"] == {"id": story.merged, "merged_into": story.kept, "build": 2}

    code, out, err = run(engine, "leads", "show", str(story.split))
    assert code == 0, err
    assert "claimed by Norte (nora) at" in out
    assert f"carried from lead {story.kept} when it split" in out


def test_build_reports_what_it_changed(engine: Engine) -> None:
    story = merge_then_split(engine)
    code, out, err = run(engine, "leads", "build", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["build_id"] == len(story.reports) + 1
    # The CLI places addresses by the enrichment, which has none here: the
    # address of the lead split off is in no known province any more, its
    # peer id joins it back, and lead 1 is in no province.
    assert (report["merges"], report["splits"], report["jurisdiction_changes"]) == (1, 0, 1)
    code, out, err = run(engine, "leads", "build")
    assert code == 0 and "leads merged" not in out
