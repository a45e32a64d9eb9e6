"""Stamping a store's sightings and audit head with the lab TSA, on both engines.

`openssl ts -verify` must accept every stored token; `verify-stamps` must
hold until someone with database access edits, removes or slips in a
sighting (triggers dropped, as an attacker would), and then name it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from atalaya.audit import read_records
from atalaya.evidence import (
    AUDIT_HEAD,
    SIGHTINGS,
    stamp_audit_head,
    stamp_sightings,
    tsa_stamper,
    verify_stamps,
)
from atalaya.evidence.merkle import leaf_hash, verify_inclusion
from atalaya.evidence.tsp import load_ca_file
from atalaya.lab.tsa import LabTsa
from atalaya.store.tables import sighting, timestamp_token
from tests.audit.helpers import drop_audit_triggers
from tests.evidence.rows import plain_row
from tests.support.cli import run_atalaya

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def tsa() -> Iterator[LabTsa]:
    with LabTsa() as running:
        yield running


def add_sightings(engine: Engine, first: int, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(sighting), [plain_row(n) for n in range(first, first + count)])


def drop_sighting_trigger(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER sighting_immutable")
        else:
            conn.exec_driver_sql("ALTER TABLE sighting DISABLE TRIGGER USER")


def env_for(engine: Engine, tsa: LabTsa) -> dict[str, str | None]:
    return {
        "ATALAYA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ATALAYA_TSA_URL": tsa.url,
        "COLUMNS": "200",
    }


def openssl_verify(tsa: LabTsa, token: bytes, message: bytes, folder: Path) -> None:
    (folder / "reply.tsr").write_bytes(token)
    (folder / "message.bin").write_bytes(message)
    command = ["openssl", "ts", "-verify", "-in", str(folder / "reply.tsr")]
    command += ["-data", str(folder / "message.bin"), "-CAfile", str(tsa.ca_file)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr


def test_stamp_verify_and_catch_tampering(engine: Engine, tsa: LabTsa, tmp_path: Path) -> None:
    add_sightings(engine, 1, 23)
    env = env_for(engine, tsa)
    done = run_atalaya("evidence", "stamp", "--batch", "5", env=env)
    assert done.returncode == 0, done.stderr
    assert "23 sightings stamped in 5 batches" in done.stderr
    assert "audit head" in done.stderr

    with engine.connect() as conn:
        stamps = conn.execute(select(timestamp_token).order_by(timestamp_token.c.id)).all()
        records = read_records(conn)
    kinds = [s.kind for s in stamps]
    assert kinds == [SIGHTINGS] * 5 + [AUDIT_HEAD]
    assert [(s.first_id, s.last_id) for s in stamps[:5]] == [
        (1, 5),
        (6, 10),
        (11, 15),
        (16, 20),
        (21, 23),
    ]
    assert [r.fields.action for r in records][-1] == "evidence_stamp"
    assert stamps[-1].last_id == records[-1].fields.seq
    assert records[-1].fields.details["sightings"] == 23

    # The real openssl accepts every token against the message we say it stamps.
    for s in stamps:
        openssl_verify(tsa, s.token, bytes.fromhex(s.root), tmp_path)

    # One sighting's proof, from the CLI, checks with the merkle module alone.
    proof = json.loads(run_atalaya("evidence", "proof", "7", "--purpose", "triage", env=env).stdout)
    assert verify_inclusion(
        leaf_hash(proof["encoding"].encode("ascii")),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(proof["root"]),
    )
    assert (
        proof["message_imprint_sha256"] == hashlib.sha256(bytes.fromhex(proof["root"])).hexdigest()
    )

    ca = ["--tsa-ca", str(tsa.ca_file)]
    done = run_atalaya("evidence", "verify-stamps", *ca, env=env)
    assert done.returncode == 0, done.stderr
    assert "6 stamps hold: 23 sightings" in done.stderr

    # A second run stamps only what is new.
    add_sightings(engine, 100, 3)
    stamped = stamp_sightings(engine, tsa_stamper(tsa.url), tsa.url, batch_size=5)
    assert [(s.first_id, s.last_id, s.leaf_count) for s in stamped] == [(24, 26, 3)]
    assert stamp_sightings(engine, tsa_stamper(tsa.url), tsa.url) == []

    # Someone with database access edits one field of sighting 8, removes 12,
    # and replaces 19 by another row under the same id.
    drop_sighting_trigger(engine)
    column = next(c for c in sighting.columns if not c.primary_key and c.name != "id")
    with engine.begin() as conn:
        other = conn.execute(select(sighting).where(sighting.c.id == 9)).mappings().one()
        conn.execute(
            update(sighting).where(sighting.c.id == 8).values({column.name: other[column.name]})
        )
        conn.execute(delete(sighting).where(sighting.c.id.in_([12, 19])))
        conn.execute(insert(sighting).values({**plain_row(999), "id": 19}))
    roots = load_ca_file(tsa.ca_file.read_bytes(), "ca.pem")
    result = verify_stamps(engine, roots)
    assert not result.ok
    assert result.altered == [8, 12, 19]
    assert result.inserted == []
    done = run_atalaya("evidence", "verify-stamps", *ca, "--json", env=env)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["altered"] == [8, 12, 19]
    assert "sighting 8 no longer matches its stamped root" in done.stderr
    assert "sighting 12 was removed" in done.stderr  # 19 is there again, so altered
    assert "sighting 19 no longer matches" in done.stderr


def test_a_row_slipped_into_a_stamped_range_is_named(engine: Engine, tsa: LabTsa) -> None:
    add_sightings(engine, 1, 6)
    drop_sighting_trigger(engine)
    with engine.begin() as conn:
        conn.execute(delete(sighting).where(sighting.c.id == 3))
    stamp_sightings(engine, tsa_stamper(tsa.url), tsa.url)
    with engine.begin() as conn:
        conn.execute(insert(sighting).values({**plain_row(3), "id": 3}))
    result = verify_stamps(engine, load_ca_file(tsa.ca_file.read_bytes(), "ca.pem"))
    assert (result.ok, result.altered, result.inserted) == (False, [], [3])


def test_stamps_are_append_only(engine: Engine, tsa: LabTsa) -> None:
    add_sightings(engine, 1, 2)
    stamp_sightings(engine, tsa_stamper(tsa.url), tsa.url)
    for statement in (
        update(timestamp_token).values(root="0" * 64),
        delete(timestamp_token),
    ):
        with (
            pytest.raises(DBAPIError, match="cannot be changed or deleted"),
            engine.begin() as conn,
        ):
            conn.execute(statement)


def test_a_rewritten_audit_log_fails_its_stamped_head(engine: Engine, tsa: LabTsa) -> None:
    add_sightings(engine, 1, 2)
    env = env_for(engine, tsa)
    assert run_atalaya("evidence", "stamp", env=env).returncode == 0
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.exec_driver_sql("UPDATE audit_record SET username = 'someone' WHERE seq = 1")
    result = verify_stamps(engine, load_ca_file(tsa.ca_file.read_bytes(), "ca.pem"))
    assert not result.ok
    assert any("audit log against its stamped heads" in p for p in result.problems)


def test_the_head_alone_when_there_is_nothing_new(engine: Engine, tsa: LabTsa) -> None:
    assert stamp_audit_head(engine, tsa_stamper(tsa.url), tsa.url) is None  # empty log
    done = run_atalaya("evidence", "stamp", env=env_for(engine, tsa))
    assert done.returncode == 0, done.stderr
    assert "0 sightings stamped in 0 batches; audit head 1:" in done.stderr
