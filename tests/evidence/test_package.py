"""The evidence package end to end: a real case exported, checked offline, by us and by openssl.

The case is made through the real parts (tests/evidence/package_world.py):
libtorrent's torrents of random bytes, the lab TSA running `openssl ts`, a
self-made CA and the unit's PKCS#12 key. The checks a defence expert would
run are run here too: `sha256sum -c`, `openssl cms -verify`, `openssl ts
-verify`, and the python3 program that VERIFY.md gives.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from atalaya.audit.log import Actor, log_event
from atalaya.evidence.package import EXPORT_ACTION, PackageError, export_case, seal
from atalaya.evidence.package_manifest import MANIFEST_NAME, SIGNATURE_NAME, make_manifest
from atalaya.evidence.package_zip import MIMETYPE_NAME, read_package
from atalaya.evidence.tsp import load_ca_file
from atalaya.evidence.verify_package import Report, verify_package
from atalaya.lab.tsa import LabTsa
from atalaya.signing import open_signer, sign_detached
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import audit_record, case_document
from tests.evidence.package_world import RECIPIENT, CaseWorld, make_case_world
from tests.support.pki import Pki, make_pki, softhsm_available

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DOCUMENT = ("solicitud-588-ter-k.txt", "Solicitud sintética de prueba\n".encode())


@pytest.fixture(scope="module")
def tsa() -> Iterator[LabTsa]:
    with LabTsa() as running:
        yield running


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tsa: LabTsa, pki: Pki) -> bytes:
    """One package of a SQLite store's case, for the tests that only read or tamper with it."""
    folder = tmp_path_factory.mktemp("exported")
    engine = create_store_engine(f"sqlite:///{folder / 'atalaya.db'}")
    try:
        upgrade(engine)
        world = make_case_world(engine, folder / "world", tsa)
        return _export(engine, world, pki, folder / "case.zip")
    finally:
        engine.dispose()


def _export(engine: Engine, world: CaseWorld, pki: Pki, out: Path) -> bytes:
    export_case(
        engine,
        world.user,
        world.case_id,
        out,
        key=pki.p12,
        recipient=RECIPIENT,
        now=NOW,
        documents=[DOCUMENT],
    )
    return out.read_bytes()


def _verify(data: bytes, pki: Pki, tsa: LabTsa) -> Report:
    roots = load_ca_file(tsa.ca_file.read_bytes(), "tsa")
    return verify_package(data, ca=[pki.cert], tsa_ca=roots)


def _unpack(data: bytes, folder: Path) -> dict[str, bytes]:
    files = read_package(data)
    for name, body in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return files


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _repack(files: dict[str, bytes], folder: Path, name: str = "t.zip") -> bytes:
    """`files` as a ZIP, as they are (the `mimetype` member too, unlike `write_package`)."""
    path = folder / name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in sorted(files, key=lambda n: (n != MIMETYPE_NAME, n)):
            archive.writestr(member, files[member])
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _resigned(files: dict[str, bytes], pki: Pki) -> dict[str, bytes]:
    """`files` sealed again with the unit's key: an insider's forgery, for the semantic checks."""
    unsealed = {k: v for k, v in files.items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
    with open_signer(pki.p12) as signer:
        return seal(unsealed, lambda manifest: sign_detached(manifest, signer))


def _problems(report: Report) -> str:
    return "\n".join(en for _, en in report.problems)


def test_export_then_verify_holds_for_us_and_for_openssl(
    engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    world = make_case_world(engine, tmp_path / "world", tsa)
    lead_id = str(world.sighting_ids[0])
    other_unit = Actor(username="sara", unit="Sevilla")
    log_event(engine, "lead_view", actor=other_unit, object_type="lead", object_id=lead_id)
    data = _export(engine, world, pki, tmp_path / "case.zip")
    report = _verify(data, pki, tsa)
    assert report.ok, "\n".join(report.lines())
    assert len(report.holds) == 7 and not report.notes
    folder = tmp_path / "unpacked"
    files = _unpack(data, folder)
    package = json.loads(files["package.json"])
    assert package["sightings"] == world.sighting_ids
    assert package["recipient"] == RECIPIENT
    assert files[f"documents/{DOCUMENT[0]}"] == DOCUMENT[1]
    audit = json.loads(files["audit/extract.json"])["records"]
    assert [(r["action"], r["unit"]) for r in audit] == [
        ("case_open", "Madrid"),
        ("lead_claim", "Madrid"),
    ]  # another unit's view of the lead stays out
    for m in world.torrents:
        assert files[f"metadata/{m.v1 or m.v2}.info"] == m.info
    assert len([n for n in files if n.startswith("transcripts/") and n[12].isdigit()]) == len(
        world.sighting_ids
    )

    checked = _run(["sha256sum", "-c", MANIFEST_NAME], folder)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(files) - 3  # all but mimetype, manifest, p7s

    cms = _run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", SIGNATURE_NAME, "-content", MANIFEST_NAME,
            "-CAfile", str(pki.ca_pem), "-purpose", "any", "-out", "/dev/null",
        ],
        folder,
    )  # fmt: skip
    assert cms.returncode == 0 and "Verification successful" in cms.stderr, cms.stderr

    stamps = json.loads(files["stamps/stamps.json"]) + json.loads(files["stamps/audit_heads.json"])
    assert {s["kind"] for s in stamps} == {"sightings", "audit_head"}
    for stamp in stamps:
        digest = hashlib.sha256(bytes.fromhex(stamp["root"])).hexdigest()
        ts = _run(
            [
                "openssl", "ts", "-verify", "-in", stamp["token"], "-digest", digest,
                "-CAfile", str(tsa.ca_file),
            ],
            folder,
        )  # fmt: skip
        assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr

    program = re.search(r"```python\n(.*?)```", files["VERIFY.md"].decode(), re.S)
    assert program is not None
    (folder / "check.py").write_text(program.group(1))
    done = _run([sys.executable, "-I", "check.py"], folder)
    assert done.returncode == 0 and "failures: 0" in done.stdout, done.stdout + done.stderr

    rows = list(csv.DictReader(io.StringIO(files["sightings/sightings.csv"].decode())))
    assert [int(r["id"]) for r in rows] == world.sighting_ids
    assert all(r["client"].startswith("'=") for r in rows)  # a formula is not run

    with engine.connect() as conn:
        record = conn.execute(
            select(audit_record).where(audit_record.c.action == EXPORT_ACTION)
        ).one()
    assert record.details["recipient"] == RECIPIENT
    assert record.details["sha256"] == hashlib.sha256(data).hexdigest()
    assert (record.object_type, record.object_id, record.outcome) == (
        "case",
        str(world.case_id),
        "ok",
    )


def test_a_flipped_byte_in_any_file_is_caught_by_name(
    exported: bytes, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    files = read_package(exported)
    kinds: dict[str, str] = {}
    for name in sorted(files):
        kind = re.sub(r"[0-9a-f]{6,}|\d+", "N", name)
        kinds.setdefault(kind, name)
    assert len(kinds) >= 20, kinds
    for name in kinds.values():
        body = bytearray(files[name])
        body[len(body) // 2] ^= 0x01
        report = _verify(_repack({**files, name: bytes(body)}, tmp_path), pki, tsa)
        assert not report.ok, name
        assert name in _problems(report), (name, _problems(report))


def test_checks_behind_the_signature_name_what_an_insider_changed(
    exported: bytes, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    files = read_package(exported)
    sightings = json.loads(files["sightings/sightings.json"])
    first = sightings["sightings"][0]

    def forged(change: Callable[[dict[str, bytes]], None]) -> str:
        copy = dict(files)
        change(copy)
        report = _verify(_repack(_resigned(copy, pki), tmp_path), pki, tsa)
        assert not report.ok
        return _problems(report)

    def remove_sighting(copy: dict[str, bytes]) -> None:
        rest = {**sightings, "sightings": sightings["sightings"][1:]}
        copy["sightings/sightings.json"] = json.dumps(rest).encode()

    assert f"sighting {first['id']}: listed in package.json but missing" in forged(remove_sighting)

    def move_sighting(copy: dict[str, bytes]) -> None:
        moved = {**first, "fields": {**first["fields"], "ip": "10.9.9.9"}}
        changed = {**sightings, "sightings": [moved, *sightings["sightings"][1:]]}
        copy["sightings/sightings.json"] = json.dumps(changed).encode()

    assert f"sighting {first['id']} (stamp" in forged(move_sighting)

    def swap_metadata(copy: dict[str, bytes]) -> None:
        names = sorted(n for n in copy if n.endswith(".info"))
        copy[names[0]], copy[names[1]] = copy[names[1]], copy[names[0]]

    swapped = forged(swap_metadata)
    assert "(metadata swapped)" in swapped and "metadata/" in swapped

    def wrong_expected_hash(copy: dict[str, bytes]) -> None:
        name = f"transcripts/{first['id']}.json"
        doc = json.loads(copy[name])
        piece = doc["pieces"][0]
        piece["expected"] = piece["computed"] = "00" * (len(piece["expected"]) // 2)
        body = json.dumps(doc).encode()
        copy[name] = body
        index = json.loads(copy["transcripts/index.json"])
        index[str(first["id"])]["sha256"] = hashlib.sha256(body).hexdigest()
        copy["transcripts/index.json"] = json.dumps(index).encode()

    assert f"transcripts/{first['id']}.json #0" in forged(wrong_expected_hash)

    def drop_transcript(copy: dict[str, bytes]) -> None:
        del copy[f"transcripts/{first['id']}.json"]

    assert f"transcripts/{first['id']}.json: listed in transcripts/index.json" in forged(
        drop_transcript
    )


def test_v2_proof_paths_are_checked_to_the_pieces_root(
    exported: bytes, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    files = read_package(exported)
    name, doc = next(
        (n, json.loads(b))
        for n, b in sorted(files.items())
        if n.startswith("transcripts/") and b'"sha256"' in b and b'"proof_path":["' in b
    )
    piece = next(p for p in doc["pieces"] if p["algorithm"] == "sha256" and p["proof_path"])
    piece["proof_path"][0] = "11" * 32
    body = json.dumps(doc).encode()
    index = json.loads(files["transcripts/index.json"])
    index[name[12:-5]]["sha256"] = hashlib.sha256(body).hexdigest()
    forged = {**files, name: body, "transcripts/index.json": json.dumps(index).encode()}
    report = _verify(_repack(_resigned(forged, pki), tmp_path), pki, tsa)
    assert f"{name} #" in _problems(report)
    assert "does not lead to file" in _problems(report)


def test_without_the_cas_the_signature_and_stamps_are_checked_but_trust_is_not_claimed(
    exported: bytes,
) -> None:
    report = verify_package(exported)
    assert report.ok
    assert any("--ca" in en for _, en in report.notes)
    assert any("pass --tsa-ca" in en for _, en in report.holds)


def test_a_signature_by_another_ca_fails(exported: bytes, tmp_path: Path, tsa: LabTsa) -> None:
    stranger = make_pki(tmp_path / "stranger")
    report = verify_package(exported, ca=[stranger.cert])
    assert "does not chain to the given CA" in _problems(report)


def test_unsigned_and_unstamped(engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki) -> None:
    world = make_case_world(engine, tmp_path / "world", tsa, stamp=False)
    with pytest.raises(PackageError, match=r"not stamped yet.*atalaya evidence stamp"):
        export_case(
            engine, world.user, world.case_id, tmp_path / "a.zip", key=None, recipient="", now=NOW
        )
    assert not (tmp_path / "a.zip").exists()
    with engine.connect() as conn:
        refused = conn.execute(
            select(audit_record).where(audit_record.c.action == EXPORT_ACTION)
        ).one()
    assert refused.outcome == "denied" and "not stamped" in refused.details["refused"]


def test_sightings_without_transcripts_export_and_verify(
    engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    world = make_case_world(engine, tmp_path / "world", tsa, transcripts=False)
    data = _export(engine, world, pki, tmp_path / "case.zip")
    report = _verify(data, pki, tsa)
    assert report.ok, "\n".join(report.lines())
    assert [en for _, en in report.notes] == ["the package holds no proof transcripts"]
    files = read_package(data)
    assert json.loads(files["transcripts/index.json"]) == {}
    assert len([n for n in files if n.startswith("metadata/") and n.endswith(".info")]) == 3


def test_a_sighting_seen_after_its_stamp_is_named(
    engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    # An observer clock a day fast: the TSA's time shows the sighting could not be seen then.
    fast = datetime.now(UTC) + timedelta(days=1)
    world = make_case_world(engine, tmp_path / "world", tsa, seen=fast)
    report = _verify(_export(engine, world, pki, tmp_path / "case.zip"), pki, tsa)
    first = world.sighting_ids[0]
    assert f"sighting {first} (stamp 1): its observation time is later than the time" in (
        _problems(report)
    )


# SoftHSM2 reads its configuration once per process (tests/support/pki.py): the token is
# made and used in a child process, so that tests/test_signing.py's token stays usable here.
_TOKEN_SIGNER = """
import sys
from pathlib import Path
from cryptography import x509
from atalaya.signing import Pkcs12Key, open_signer, sign_detached
from tests.support.pki import Pki, make_softhsm_token
folder, ca, cert, key, manifest, out = map(Path, sys.argv[1:])
pki = Pki(ca, cert, key, Pkcs12Key(folder / "unused.p12"),
          x509.load_pem_x509_certificate(cert.read_bytes()))
with open_signer(make_softhsm_token(folder, pki)) as signer:
    out.write_bytes(sign_detached(manifest.read_bytes(), signer))
"""


def test_a_package_signed_on_a_token_verifies(
    exported: bytes, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed (scripts/setup.sh installs softhsm2)")
    files = read_package(exported)
    unsealed = {k: v for k, v in files.items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
    manifest = make_manifest(unsealed)
    (tmp_path / "manifest").write_bytes(manifest)
    paths = [tmp_path / "softhsm", pki.ca_pem, pki.cert_pem, pki.key_pem]
    done = subprocess.run(
        [sys.executable, "-c", _TOKEN_SIGNER, *map(str, paths),
         str(tmp_path / "manifest"), str(tmp_path / "sig")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    signature = (tmp_path / "sig").read_bytes()
    sealed = seal(unsealed, lambda _: signature)
    assert sealed[MANIFEST_NAME] == manifest
    report = _verify(_repack(sealed, tmp_path), pki, tsa)
    assert report.ok, "\n".join(report.lines())


def test_an_unsigned_package_does_not_verify(
    exported: bytes, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    files = read_package(exported)
    del files[SIGNATURE_NAME]
    report = _verify(_repack(files, tmp_path), pki, tsa)
    assert "the manifest is not signed" in _problems(report)
    assert len(report.problems) == 1


def test_mimetype_is_first_and_stored(exported: bytes, tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(exported)
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
    assert first.filename == MIMETYPE_NAME and first.compress_type == zipfile.ZIP_STORED
    assert exported[30:38] == MIMETYPE_NAME.encode()  # readable by `file` at a fixed offset


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_hostile_json_in_any_member_gives_a_report_never_an_exception(
    exported: bytes, tmp_path: Path
) -> None:
    files = read_package(exported)
    names = sorted(n for n in files if n.endswith(".json"))
    first_sighting = json.loads(files["sightings/sightings.json"])["sightings"][0]

    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.sampled_from(names), _JSON, st.booleans(), st.integers(0, 20))
    def check(name: str, value: object, nest: bool, key: int) -> None:
        if nest:  # the value one level down, where the checks look for fields
            doc = json.loads(files[name])
            if isinstance(doc, dict) and doc:
                doc[sorted(doc)[key % len(doc)]] = value
            elif isinstance(doc, list) and doc:
                doc[key % len(doc)] = value
            value = doc
        if name == "sightings/sightings.json" and nest and isinstance(value, dict):
            value["sightings"] = [
                {"id": first_sighting["id"], "fields": value.get("encoding_version")}
            ]
        report = verify_package(_repack({**files, name: json.dumps(value).encode()}, tmp_path))
        assert not report.ok

    check()


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("hashsets/extract.json", {"hash_sets": 5, "reference_files": "x"}),
        ("enrichment/facts.json", {"facts": 3, "data_versions": {"a": 1}}),
        ("audit/extract.json", {"records": [1, "x", {"seq": "1"}]}),
        ("stamps/stamps.json", [5, {"id": "x"}, {"id": 1, "root": "zz", "token": 3}]),
        ("stamps/proofs.json", {"1": 5, "2": {"path": 7}}),
        ("transcripts/index.json", []),
        ("package.json", {"sightings": [1, "2"]}),
        ("sightings/sightings.json", {"sightings": [{"id": 1, "fields": {"id": 1}}, 4]}),
        ("metadata/index.json", {"x": None}),
    ],
)
def test_odd_shapes_are_problems_not_crashes(
    exported: bytes, tmp_path: Path, name: str, doc: object
) -> None:
    files = read_package(exported)
    report = verify_package(_repack({**files, name: json.dumps(doc).encode()}, tmp_path))
    assert name in _problems(report)


def test_the_cases_own_documents_go_into_the_package(
    engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    """Without `documents`, the export takes the case's drafted requests from the store."""
    world = make_case_world(engine, tmp_path / "world", tsa)
    body = b"%PDF-1.7 synthetic request\n"
    with engine.begin() as conn:
        conn.execute(
            insert(case_document).values(
                case_id=world.case_id,
                kind="judicial",
                format="pdf",
                body=body,
                sha256=hashlib.sha256(body).hexdigest(),
                created_at=NOW,
                created_by=world.user.username,
                signed=False,
                details={},
            )
        )
    out = tmp_path / "case.zip"
    export_case(engine, world.user, world.case_id, out, key=pki.p12, recipient=RECIPIENT, now=NOW)
    files = read_package(out.read_bytes())
    documents = {n: b for n, b in files.items() if n.startswith("documents/")}
    assert list(documents.values()) == [body]
    assert next(iter(documents)).endswith(".pdf")
    assert _verify(out.read_bytes(), pki, tsa).ok
