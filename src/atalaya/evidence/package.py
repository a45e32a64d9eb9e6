"""Exporting a case as one signed, self-verifying evidence package.

`build_package` gathers from the store everything a third party needs to
re-check the case's sightings without the store: the sightings as they were
stamped, their proof transcripts, the torrent metadata the pieces were
checked against, the RFC 3161 tokens with each sighting's merkle inclusion
proof, the hash-set extract, the enrichment facts with their data versions,
the case's audit extract, the software's digest and any case documents.
`write_signed_package` adds the manifest, signs it (detached CMS, the unit's
key from `atalaya.signing`) and writes the ZIP. `atalaya evidence verify`
(`atalaya.evidence.verify_package`) checks it offline.

Layout (see docs/evidence-package.md):

    mimetype                         what the file is, stored first
    VERIFY.md                        how to check it with openssl and python3 (es, en)
    package.json                     case id, sighting ids, who, when, for whom, counts
    case/case.json                   the case and its events
    sightings/sightings.json         per sighting its stamped fields (canonical text)
    sightings/sightings.csv          the same for a spreadsheet (cells neutralised)
    transcripts/<id>.json            proof transcripts as stored (canonical JSON)
    transcripts/index.json           per transcript its version and stored SHA-256
    metadata/<infohash>.info         bencoded info dictionaries the pieces were checked against
    metadata/index.json              where and when each was fetched
    stamps/<stamp id>.tsr            RFC 3161 TimeStampResp (DER) of each stamp used
    stamps/stamps.json               per stamp what it covers: root, ids, time, TSA
    stamps/proofs.json               per sighting its leaf index and inclusion proof
    hashsets/extract.json            matched reference files: hashes, categories, set, import digest
    enrichment/facts.json            what the data said of each address, with data versions
    audit/extract.json               audit records about the case and its lead, chain fields
    software/software.json           the observers' versions and this software's digest
    software/files.sha256            the digest of every file of the installed package
    documents/<name>                 case documents (judicial requests)
    META-INF/manifest.sha256         SHA-256 of every member above (sha256sum format)
    META-INF/manifest.sha256.p7s     detached CMS signature of the manifest (DER)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from atalaya.accounts import User
from atalaya.audit.log import MAX_READ_LIMIT as AUDIT_READ_LIMIT
from atalaya.audit.log import AuditQuery, Outcome, local_details, log_event, read_records
from atalaya.cases.documents import case_documents
from atalaya.cases.records import case_events, get_case, pinned_sightings
from atalaya.csv_cells import neutralise
from atalaya.errors import AtalayaError
from atalaya.evidence.merkle import leaf_hash
from atalaya.evidence.package_manifest import MANIFEST_NAME, SIGNATURE_NAME, make_manifest
from atalaya.evidence.package_proofs import all_inclusion_proofs
from atalaya.evidence.package_software import software_facts
from atalaya.evidence.package_text import VERIFY_MD
from atalaya.evidence.package_zip import write_package
from atalaya.evidence.stamping import (
    ENCODING_VERSION,
    canonical_json,
    unpack_leaves,
    value_text,
)
from atalaya.evidence.stamps import AUDIT_HEAD, SIGHTINGS
from atalaya.hashsets import lookup
from atalaya.signing import SigningKey, open_signer, sign_detached
from atalaya.store.tables import (
    audit_record,
    enrichment,
    enrichment_data,
    hash_set,
    proof_transcript,
    sighting,
    timestamp_token,
    torrent_metadata,
)
from atalaya.store.times import utc

PACKAGE_FORMAT = "atalaya-evidence-package"
PACKAGE_VERSION = 1
MAX_DOCUMENTS = 100
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
MAX_RECIPIENT = 500
IN_BATCH = 500  # ids per IN (…) list
TORRENT_KINDS = ("btih", "btih2")
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class PackageError(AtalayaError):
    """The case cannot be exported as asked (unstamped sightings, a bad document name…)."""


def dumps(value: Any) -> bytes:
    """Stable, readable JSON: sorted keys, two-space indent, UTF-8, final newline."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def json_lines(entries: Mapping[str, str]) -> bytes:
    """A large JSON object, one entry per line; `entries` maps each key to its JSON text.

    Per line, the file stays readable and diff-able; built from text, a
    10,000-entry file costs no per-entry encoder call.
    """
    inner = ",\n".join(f"  {json.dumps(k)}: {entries[k]}" for k in sorted(entries))
    return ("{" + ("\n" + inner + "\n" if entries else "") + "}\n").encode("ascii")


def _chunks(ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(ids), IN_BATCH):
        yield ids[start : start + IN_BATCH]


@dataclass
class Package:
    """The members of a package before its manifest and signature, and what it holds."""

    case_id: int
    files: dict[str, bytes] = field(default_factory=dict)
    sighting_ids: list[int] = field(default_factory=list)
    transcripts: int = 0
    metadata: int = 0
    stamps: int = 0
    audit_records: int = 0
    documents: int = 0


def _sighting_rows(conn: Connection, ids: Sequence[int]) -> list[Any]:
    rows: list[Any] = []
    for part in _chunks(ids):
        rows.extend(conn.execute(select(sighting).where(sighting.c.id.in_(part))).mappings())
    rows.sort(key=lambda r: int(r["id"]))
    return rows


def _fields(row: Mapping[str, Any]) -> dict[str, str]:
    """A sighting as stamped: every non-NULL column as its canonical text (stamping.py)."""
    # Text is most columns and is its own text form: skip value_text's type tests for it.
    return {str(k): v if type(v) is str else value_text(v) for k, v in row.items() if v is not None}


def _sightings_files(rows: Sequence[dict[str, str]], encodings: Sequence[str]) -> dict[str, bytes]:
    """`rows`: each sighting's `_fields`, in id order; `encodings`: their canonical JSON."""
    # One sighting per line, {"fields": …, "id": N} in canonical JSON (keys sorted):
    # readable, diff-able between two exports, and the stamped encoding verbatim.
    lines = ",\n".join(
        f'    {{"fields":{encoding},"id":{int(fields["id"])}}}'
        for fields, encoding in zip(rows, encodings, strict=True)
    )
    body = (
        '{\n  "encoding_version": '
        + str(ENCODING_VERSION)
        + ',\n  "sightings": [\n'
        + lines
        + ("\n" if lines else "")
        + "  ]\n}\n"
    )
    columns = [c.name for c in sighting.columns]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    for fields in rows:
        writer.writerow([neutralise(fields.get(c, "")) for c in columns])
    return {
        "sightings/sightings.json": body.encode("ascii"),
        "sightings/sightings.csv": text.getvalue().encode("utf-8"),
    }


def _stamp_files(
    conn: Connection, ids: Sequence[int], encodings: Sequence[str]
) -> tuple[dict[str, bytes], int]:
    """Tokens, what they cover, and each sighting's inclusion proof; refuses gaps."""
    wanted = {i: leaf_hash(e.encode("ascii")) for i, e in zip(ids, encodings, strict=True)}
    if not wanted:
        return {"stamps/stamps.json": dumps([]), "stamps/proofs.json": json_lines({})}, 0
    low, high = min(wanted), max(wanted)
    stamp_rows = (
        conn.execute(
            select(timestamp_token)
            .where(
                timestamp_token.c.kind == SIGHTINGS,
                timestamp_token.c.last_id >= low,
                timestamp_token.c.first_id <= high,
            )
            .order_by(timestamp_token.c.id)
        )
        .mappings()
        .all()
    )
    files: dict[str, bytes] = {}
    described: list[dict[str, Any]] = []
    proofs: dict[str, str] = {}  # sighting id -> its proof as JSON text
    altered: list[int] = []
    for stamp in stamp_rows:
        batch = unpack_leaves(bytes(stamp["leaves"] or b""))
        mine = [(i, n) for n, i in enumerate(batch.ids) if i in wanted and str(i) not in proofs]
        if not mine:
            continue
        paths = all_inclusion_proofs(batch.leaves)
        for sighting_id, index in mine:
            if batch.leaves[index] != wanted[sighting_id]:
                altered.append(sighting_id)
                continue
            path = ",".join(f'"{h.hex()}"' for h in paths[index])
            proofs[str(sighting_id)] = (
                f'{{"leaf_index":{index},"path":[{path}],"stamp":{int(stamp["id"])},'
                f'"tree_size":{len(batch.ids)}}}'
            )
        name = f"stamps/{int(stamp['id'])}.tsr"
        files[name] = bytes(stamp["token"])
        described.append(_describe_stamp(stamp, name))
    if altered:
        raise PackageError(
            f"{len(altered)} sightings no longer match their stamped root (first: "
            f"{altered[0]}): run 'atalaya evidence verify-stamps' before exporting"
        )
    missing = sorted(i for i in wanted if str(i) not in proofs)
    if missing:
        shown = ", ".join(str(i) for i in missing[:10])
        raise PackageError(
            f"{len(missing)} of the case's sightings are not stamped yet ({shown}"
            f"{', …' if len(missing) > 10 else ''}): run 'atalaya evidence stamp' first"
        )
    files["stamps/stamps.json"] = dumps(described)
    files["stamps/proofs.json"] = json_lines(proofs)
    return files, len(described)


def _describe_stamp(stamp: Any, name: str) -> dict[str, Any]:
    return {
        "id": int(stamp["id"]),
        "kind": stamp["kind"],
        "first_id": int(stamp["first_id"]),
        "last_id": int(stamp["last_id"]),
        "leaf_count": int(stamp["leaf_count"]),
        "root": stamp["root"],
        "gen_time": value_text(utc(stamp["gen_time"])),
        "tsa_url": stamp["tsa_url"],
        "token": name,
    }


def _transcript_files(conn: Connection, ids: Sequence[int]) -> tuple[dict[str, bytes], set[str]]:
    """Transcripts by sighting id, and the info-hashes they name (present or absent: both fine)."""
    files: dict[str, bytes] = {}
    index: dict[str, str] = {}  # sighting id -> {"sha256", "version"} as JSON text
    hashes: set[str] = set()
    t = proof_transcript.c
    for part in _chunks(ids):
        for row in conn.execute(
            select(t.sighting_id, t.version, t.body, t.sha256).where(t.sighting_id.in_(part))
        ):
            body = bytes(row.body)
            files[f"transcripts/{int(row.sighting_id)}.json"] = body
            index[str(int(row.sighting_id))] = canonical_json(
                {"sha256": str(row.sha256), "version": int(row.version)}
            )
            named = _named_infohash(body)
            if named:
                hashes.add(named)
    files["transcripts/index.json"] = json_lines(index)
    return files, hashes


def _named_infohash(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
        value = doc["metadata"]["info_hash"]
    except (ValueError, KeyError, TypeError):
        return None
    return value.lower() if isinstance(value, str) and len(value) in (40, 64) else None


def _metadata_files(conn: Connection, hashes: set[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    index: list[dict[str, Any]] = []
    seen: set[str] = set()
    m = torrent_metadata.c
    wanted = sorted(hashes)
    for part in _chunks(wanted):
        for row in conn.execute(
            select(m.infohash, m.infohash_v2, m.info, m.fetched_at, m.fetched_from).where(
                m.infohash.in_(part) | m.infohash_v2.in_(part)
            )
        ):
            if row.infohash in seen:
                continue
            seen.add(row.infohash)
            name = f"metadata/{row.infohash}.info"
            files[name] = bytes(row.info)
            index.append(
                {
                    "infohash": row.infohash,
                    "infohash_v2": row.infohash_v2,
                    "file": name,
                    "fetched_at": value_text(utc(row.fetched_at)),
                    "fetched_from": row.fetched_from,
                }
            )
    index.sort(key=lambda e: e["infohash"])
    files["metadata/index.json"] = dumps(index)
    return files


def _hashset_extract(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The reference files the sightings matched: hashes, categories, their set. No content."""
    keys = sorted({str(r["file_key"]) for r in rows if r["file_key"]})
    set_names = sorted({str(r["hash_set"]) for r in rows if r["hash_set"]})
    sets = []
    for part in _chunks(set_names):
        for one in conn.execute(select(hash_set).where(hash_set.c.name.in_(part))).mappings():
            sets.append(
                {
                    "id": int(one["id"]),
                    "name": one["name"],
                    "source": one["source"],
                    "format": one["format"],
                    "version": one["version"],
                    "imported_at": value_text(utc(one["imported_at"])),
                    "import_sha256": one["file_sha256"],
                    "files": int(one["file_count"]),
                    "hashes": int(one["hash_count"]),
                }
            )
    sets.sort(key=lambda s: s["name"])
    files: dict[tuple[int, str], dict[str, Any]] = {}
    for file in lookup.files_by_keys(conn, keys):
        files[(file.hash_set_id, file.file_key)] = {
            "hash_set_id": file.hash_set_id,
            "file_key": file.file_key,
            "category": file.category,
            "category_label": file.category_label,
            "hashes": [],
        }
    for (set_id, key), hashes in lookup.file_hashes(conn, keys).items():
        entry = files.get((set_id, key))
        if entry is not None:
            entry["hashes"] = sorted(
                ({"algorithm": a, "value": v.hex()} for a, v in hashes.items()),
                key=lambda x: (x["algorithm"], x["value"]),
            )
    matched = [
        {
            "sighting_hash_set": r["hash_set"],
            "sighting_hash_set_sha256": r["hash_set_sha256"],
            "file_key": r["file_key"],
            "category": r["category"],
        }
        for r in rows
        if r["file_key"]
    ]
    unique = {canonical_json(m): m for m in matched}
    return dumps(
        {
            "note": "hashes, categories and their source only: no content is held or exported",
            "hash_sets": sets,
            "reference_files": [files[k] for k in sorted(files)],
            "as_matched": [unique[k] for k in sorted(unique)],
        }
    )


def _enrichment_facts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> bytes:
    ips = sorted({str(r["ip"]) for r in rows})
    facts: list[dict[str, Any]] = []
    versions: set[str] = set()
    for part in _chunks(ips):
        for row in conn.execute(select(enrichment).where(enrichment.c.ip.in_(part))).mappings():
            fact = {k: _plain(v) for k, v in row.items()}
            facts.append(fact)
            versions.add(str(row["data_version"]))
    facts.sort(key=lambda x: (x["ip"], x["data_version"]))
    data = []
    for part in _chunks(sorted(versions)):
        for row in conn.execute(
            select(enrichment_data).where(enrichment_data.c.data_version.in_(part))
        ).mappings():
            data.append({k: _plain(v) for k, v in row.items()})
    data.sort(key=lambda x: x["data_version"])
    return dumps({"data_versions": data, "facts": facts})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value_text(utc(value))
    return value


def _audit_extract(
    conn: Connection, case_id: int, unit_name: str, lead_ids: Iterable[int]
) -> tuple[bytes, int]:
    """Records on the case, and the unit's own records about (or showing) its lead.

    Other units' views of the lead stay out: what another unit looked at is
    theirs, and would tell the reader of a court file about their work.
    """
    found = {}
    for entry in read_records(
        conn, AuditQuery(object_type="case", object_id=str(case_id), limit=AUDIT_READ_LIMIT)
    ):
        found[entry.fields.seq] = entry
    for lead_id in sorted(set(lead_ids)):
        query = AuditQuery(lead_id=lead_id, unit=unit_name, limit=AUDIT_READ_LIMIT)
        for entry in read_records(conn, query):
            found[entry.fields.seq] = entry
    records = [found[s].as_dict() for s in sorted(found)]
    head_stamps = []
    if records:
        last = records[-1]["seq"]
        stamp = (
            conn.execute(
                select(timestamp_token)
                .where(timestamp_token.c.kind == AUDIT_HEAD, timestamp_token.c.last_id >= last)
                .order_by(timestamp_token.c.last_id)
                .limit(1)
            )
            .mappings()
            .first()
        )
        if stamp is not None:
            head_stamps.append(int(stamp["id"]))
    head = conn.execute(
        select(audit_record.c.seq, audit_record.c.hash).order_by(audit_record.c.seq.desc()).limit(1)
    ).first()
    return (
        dumps(
            {
                "note": (
                    "records about this case and its lead; 'hash' is SHA-256, or HMAC-SHA256 "
                    "under the unit's audit key, of the canonical JSON of every other field"
                ),
                "records": records,
                "chain_head": None if head is None else {"seq": int(head.seq), "hash": head.hash},
                "head_stamps": head_stamps,
            }
        ),
        len(records),
    )


def _audit_head_stamp_files(
    conn: Connection, audit_json: bytes
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    ids = json.loads(audit_json)["head_stamps"]
    files: dict[str, bytes] = {}
    described = []
    for stamp in conn.execute(
        select(timestamp_token).where(timestamp_token.c.id.in_(ids))
    ).mappings():
        name = f"stamps/{int(stamp['id'])}.tsr"
        files[name] = bytes(stamp["token"])
        described.append(_describe_stamp(stamp, name))
    return files, described


def check_documents(documents: Sequence[tuple[str, bytes]]) -> None:
    if len(documents) > MAX_DOCUMENTS:
        raise PackageError(f"at most {MAX_DOCUMENTS} case documents, not {len(documents)}")
    names = set()
    for name, body in documents:
        if not _DOCUMENT_NAME.fullmatch(name) or name.endswith("."):
            raise PackageError(
                f"case document name {name!r} must be letters, digits, '.', '_' or '-'"
            )
        if name in names:
            raise PackageError(f"two case documents are named {name}")
        names.add(name)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise PackageError(f"case document {name} is larger than {MAX_DOCUMENT_BYTES} bytes")


def build_package(
    conn: Connection,
    user: User,
    case_id: int,
    *,
    now: datetime,
    recipient: str,
    documents: Sequence[tuple[str, bytes]] = (),
) -> Package:
    """Everything but the manifest and its signature, for the case the user's unit may see.

    `documents`: (file name, bytes) of the case's documents, stored under
    `documents/`; the caller gathers them (see `case_documents_hook`).
    """
    check_documents(documents)
    case = get_case(conn, user, case_id)
    ids = pinned_sightings(conn, case_id)
    rows = _sighting_rows(conn, ids)
    fields = [_fields(r) for r in rows]
    encodings = [canonical_json(f) for f in fields]  # what each stamp leaf hashes
    package = Package(case_id, sighting_ids=[int(r["id"]) for r in rows])
    files = package.files
    files.update(_sightings_files(fields, encodings))
    stamp_files, package.stamps = _stamp_files(conn, package.sighting_ids, encodings)
    files.update(stamp_files)
    transcript_files, named = _transcript_files(conn, package.sighting_ids)
    files.update(transcript_files)
    package.transcripts = len(transcript_files) - 1
    hashes = named | {str(r["item_value"]).lower() for r in rows if r["item_kind"] in TORRENT_KINDS}
    metadata_files = _metadata_files(conn, hashes)
    files.update(metadata_files)
    package.metadata = len(metadata_files) - 1
    files["hashsets/extract.json"] = _hashset_extract(conn, rows)
    files["enrichment/facts.json"] = _enrichment_facts(conn, rows)
    audit_json, package.audit_records = _audit_extract(
        conn, case_id, case.unit, (case.lead_id, case.made_on)
    )
    files["audit/extract.json"] = audit_json
    head_files, head_stamps = _audit_head_stamp_files(conn, audit_json)
    files.update(head_files)
    files["stamps/audit_heads.json"] = dumps(head_stamps)
    events = [e.as_dict() for e in case_events(conn, case_id)]
    files["case/case.json"] = dumps({"case": case.as_dict(), "events": events})
    observers = sorted({str(r["observer"]) for r in rows})
    files["software/software.json"], files["software/files.sha256"] = software_facts(observers)
    for name, body in documents:
        files[f"documents/{name}"] = body
    package.documents = len(documents)
    files["VERIFY.md"] = VERIFY_MD.encode()
    files["package.json"] = dumps(
        {
            "format": PACKAGE_FORMAT,
            "version": PACKAGE_VERSION,
            "case": case_id,
            "lead": case.lead_id,
            "unit": case.unit,
            "created_at": value_text(now),
            "exported_by": user.username,
            "recipient": recipient,
            "sightings": package.sighting_ids,
            "counts": {
                "sightings": len(package.sighting_ids),
                "transcripts": package.transcripts,
                "metadata": package.metadata,
                "stamps": package.stamps,
                "audit_records": package.audit_records,
                "documents": package.documents,
            },
        }
    )
    return package


def case_documents_hook(conn: Connection, case_id: int) -> list[tuple[str, bytes]]:
    """The case's documents to package: (file name, bytes), the latest of each kind and format.

    `atalaya evidence export` calls it once the case's access is checked;
    `build_package` takes its result.
    """
    return [(doc.name, doc.body) for doc in case_documents(conn, case_id)]


def seal(files: Mapping[str, bytes], sign: Callable[[bytes], bytes] | None) -> dict[str, bytes]:
    """`files` with their manifest and, when `sign` is given, the manifest's signature."""
    sealed = dict(files)
    manifest = make_manifest(files)
    sealed[MANIFEST_NAME] = manifest
    if sign is not None:
        sealed[SIGNATURE_NAME] = sign(manifest)
    return sealed


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


EXPORT_ACTION = "evidence_export"


@dataclass(frozen=True)
class Exported:
    """A package written: where, its SHA-256, and what it holds."""

    path: Path
    sha256: str
    size: int
    members: int
    signed_by: str | None
    package: Package


def export_case(
    engine: Engine,
    user: User,
    case_id: int,
    out: Path,
    *,
    key: SigningKey | None,
    recipient: str,
    now: datetime,
    documents: Sequence[tuple[str, bytes]] | None = None,
) -> Exported:
    """Build, sign (when `key` is given) and write the case's package to `out`; audited.

    `documents` defaults to `case_documents_hook(conn, case_id)`. The audit
    record names the recipient, the package's SHA-256 and the signer; a
    refusal is recorded as denied.
    """
    recipient = recipient.strip()[:MAX_RECIPIENT]
    details: dict[str, Any] = {**local_details(), "recipient": recipient, "file": out.name}
    actor = user.actor()
    try:
        if out.exists():
            raise PackageError(f"{out} exists: choose another file name")
        with engine.connect() as conn:
            docs = case_documents_hook(conn, case_id) if documents is None else documents
            package = build_package(
                conn, user, case_id, now=now, recipient=recipient, documents=docs
            )
        if key is None:
            sealed, signed_by = seal(package.files, None), None
        else:
            with open_signer(key) as signer:
                sealed = seal(package.files, lambda manifest: sign_detached(manifest, signer))
            signed_by = key.describe()
        partial = out.with_name(out.name + ".partial")
        try:
            write_package(partial, sealed, now)
            data = partial.read_bytes()
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    except AtalayaError as exc:
        log_event(
            engine,
            EXPORT_ACTION,
            actor=actor,
            outcome=Outcome.DENIED,
            object_type="case",
            object_id=case_id,
            details={**details, "refused": str(exc)[:500]},
        )
        raise
    digest = sha256_hex(data)
    log_event(
        engine,
        EXPORT_ACTION,
        actor=actor,
        object_type="case",
        object_id=case_id,
        details={
            **details,
            "sha256": digest,
            "signed_by": signed_by,
            "sightings": len(package.sighting_ids),
            "members": len(sealed) + 1,
        },
    )
    return Exported(out, digest, len(data), len(sealed) + 1, signed_by, package)
