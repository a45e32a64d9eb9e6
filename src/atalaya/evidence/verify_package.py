"""Checking an evidence package offline, without the store: what holds, and what does not, named.

`verify_package(data, ca=…, tsa_ca=…)` reads the ZIP as hostile
(`package_zip.read_package`), then checks, each problem naming the file
and, where there is one, the sighting:

1. the manifest: every member listed with its SHA-256, none missing, none
   added;
2. the manifest's detached CMS signature: intact, and chaining to `ca`
   when given;
3. every RFC 3161 token: a granted reply stamping SHA-256(root), signed by
   a TSA certificate chaining to `tsa_ca` when given;
4. every sighting: its canonical encoding, hashed as a leaf, leads through
   its inclusion proof to the root its stamp covers; the sightings listed
   by package.json are exactly those present (one removed is named), and
   the CSV says the same as the JSON;
5. every proof transcript: its stored SHA-256, the item it names, and each
   piece hash against the metadata (`verify_pieces`), or an eD2K
   transcript's part MD4 or AICH block against the sighting's eD2K hash or
   AICH tree (`verify_ed2k`); every metadata file
   hashes to the info-hash it is named by (a swapped one is named);
6. the hash-set extract and the enrichment facts cover what the sightings
   refer to; the audit extract's records are canonical, linked, and
   (unkeyed ones) hash to their hash; the audit head's stamp matches.

Every message is given in Spanish and in English.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext

from atalaya.audit.encoding import AuditEncodingError, parse_canonical
from atalaya.csv_cells import neutralise
from atalaya.evidence.merkle import MerkleError, leaf_hash, root_from_proof
from atalaya.evidence.package_manifest import (
    MANIFEST_NAME,
    NOT_LISTED,
    SIGNATURE_NAME,
    ManifestError,
    parse_manifest,
)
from atalaya.evidence.package_zip import PackageFormatError, read_package
from atalaya.evidence.stamping import TIME_FORMAT, canonical_json
from atalaya.evidence.tsp import TsaError, check_reply
from atalaya.evidence.verify_ed2k import check_ed2k_transcript
from atalaya.evidence.verify_pieces import (
    MetainfoError,
    PieceCheck,
    Torrent,
    check_transcript,
    load_torrent,
    parse_transcript,
)

MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_JSON_BYTES = 512 * 1024 * 1024
MAX_NAMED = 50  # problems listed one by one per kind before "and N more"


@dataclass
class Report:
    """Lines that hold and problems, each as (Spanish, English)."""

    holds: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    refused: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, es: str, en: str) -> None:
        self.problems.append((es, en))

    def hold(self, es: str, en: str) -> None:
        self.holds.append((es, en))

    def note(self, es: str, en: str) -> None:
        self.notes.append((es, en))

    def lines(self) -> list[str]:
        out: list[str] = []
        for es, en in self.holds:
            out.append(f"CORRECTO / HOLDS: {es} / {en}")
        for es, en in self.notes:
            out.append(f"AVISO / NOTE: {es} / {en}")
        for es, en in self.problems:
            out.append(f"FALLO / FAILS: {es} / {en}")
        out.append(
            "RESULTADO / RESULT: "
            + (
                "todo lo comprobado se sostiene / everything checked holds"
                if self.ok
                else f"{len(self.problems)} fallos / {len(self.problems)} failures"
            )
        )
        return out


class _Json:
    """Members read as JSON once, a problem named when one cannot be."""

    def __init__(self, files: dict[str, bytes], report: Report) -> None:
        self.files = files
        self.report = report
        self.cache: dict[str, Any] = {}

    def get(self, name: str, kind: type) -> Any:
        if name in self.cache:
            return self.cache[name]
        value: Any = None
        body = self.files.get(name)
        if body is None:
            self.report.fail(f"falta el fichero {name}", f"file {name} is missing")
        elif len(body) > MAX_JSON_BYTES:
            self.report.fail(f"{name} es demasiado grande", f"{name} is too large")
        else:
            try:
                value = json.loads(body)
            except (ValueError, RecursionError):
                self.report.fail(f"{name} no es JSON legible", f"{name} is not readable JSON")
            if value is not None and not isinstance(value, kind):
                self.report.fail(
                    f"{name} no tiene la forma esperada", f"{name} has the wrong shape"
                )
                value = None
        self.cache[name] = value
        return value


Named = str | tuple[str, str]  # what a problem is about: one text, or (Spanish, English)


def _named(report: Report, items: Sequence[Named], es: str, en: str) -> None:
    """One problem per item, the first MAX_NAMED; then one line for the rest."""
    for item in items[:MAX_NAMED]:
        item_es, item_en = (item, item) if isinstance(item, str) else item
        report.fail(f"{item_es}: {es}", f"{item_en}: {en}")
    if len(items) > MAX_NAMED:
        report.fail(
            f"y {len(items) - MAX_NAMED} más: {es}", f"and {len(items) - MAX_NAMED} more: {en}"
        )


def _check_manifest(files: dict[str, bytes], report: Report) -> None:
    manifest = files.get(MANIFEST_NAME)
    if manifest is None:
        report.fail(
            f"falta el manifiesto {MANIFEST_NAME}", f"the manifest {MANIFEST_NAME} is missing"
        )
        return
    try:
        digests = parse_manifest(manifest)
    except ManifestError as exc:
        report.fail(f"{MANIFEST_NAME} ilegible", f"{MANIFEST_NAME} is unreadable: {exc}")
        return
    altered = [
        n for n, d in digests.items() if n in files and hashlib.sha256(files[n]).hexdigest() != d
    ]
    missing = [n for n in digests if n not in files]
    added = [n for n in files if n not in digests and n not in NOT_LISTED]
    _named(
        report,
        sorted(altered),
        "alterado: su SHA-256 no es el del manifiesto",
        "altered: its SHA-256 is not the manifest's",
    )
    _named(
        report,
        sorted(missing),
        "eliminado: está en el manifiesto pero no en el paquete",
        "removed: listed in the manifest but not in the package",
    )
    _named(
        report,
        sorted(added),
        "añadido: no está en el manifiesto",
        "added: not listed in the manifest",
    )
    if not (altered or missing or added):
        report.hold(
            f"manifiesto: los {len(digests)} ficheros tienen el SHA-256 indicado",
            f"manifest: all {len(digests)} files have the SHA-256 it lists",
        )


def _asn1_certs(certs: Sequence[x509.Certificate]) -> list[asn1_x509.Certificate]:
    return [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in certs]


def _check_signature(
    files: dict[str, bytes], ca: Sequence[x509.Certificate], report: Report
) -> None:
    signature = files.get(SIGNATURE_NAME)
    manifest = files.get(MANIFEST_NAME)
    if signature is None:
        report.fail(
            f"el manifiesto no está firmado (falta {SIGNATURE_NAME})",
            f"the manifest is not signed ({SIGNATURE_NAME} is missing)",
        )
        return
    if manifest is None:
        return
    if len(signature) > MAX_SIGNATURE_BYTES:
        report.fail(f"{SIGNATURE_NAME} es demasiado grande", f"{SIGNATURE_NAME} is too large")
        return
    try:
        info = asn1_cms.ContentInfo.load(signature)
        signed_data = info["content"]
        context = ValidationContext(trust_roots=_asn1_certs(ca), allow_fetching=False)
        status = asyncio.run(
            async_validate_detached_cms(manifest, signed_data, signer_validation_context=context)
        )
        subject = status.signing_cert.subject.human_friendly
        fingerprint = hashlib.sha256(status.signing_cert.dump()).hexdigest()
        intact, valid, trusted = status.intact, status.valid, status.trusted
    except Exception as exc:  # a hostile DER can fail anywhere in asn1crypto or pyHanko
        report.fail(
            f"{SIGNATURE_NAME}: la firma no se puede leer",
            f"{SIGNATURE_NAME}: the signature cannot be read: {str(exc)[:200]}",
        )
        return
    who = f"{subject} (SHA-256 {fingerprint})"
    if not (intact and valid):
        report.fail(
            f"{SIGNATURE_NAME}: la firma de {who} no corresponde a {MANIFEST_NAME}",
            f"{SIGNATURE_NAME}: the signature by {who} does not match {MANIFEST_NAME}",
        )
    elif not ca:
        report.hold(
            f"firma: el manifiesto está firmado por {who}",
            f"signature: the manifest is signed by {who}",
        )
        report.note(
            "no se comprobó en quién confía el certificado del firmante: use --ca",
            "the signer's certificate chain was not checked: pass --ca",
        )
    elif not trusted:
        report.fail(
            f"{SIGNATURE_NAME}: el certificado de {who} no encadena a la CA indicada",
            f"{SIGNATURE_NAME}: {who}'s certificate does not chain to the given CA",
        )
    else:
        report.hold(
            f"firma: el manifiesto está firmado por {who}, que encadena a la CA indicada",
            f"signature: the manifest is signed by {who}, chaining to the given CA",
        )


@dataclass(frozen=True)
class _Stamp:
    id: int
    kind: str
    root: str
    leaf_count: int
    last_id: int
    gen_time: str = ""  # the token's time, as the canonical encoding writes times


def _check_stamps(
    files: dict[str, bytes], js: _Json, tsa_ca: Sequence[x509.Certificate], report: Report
) -> dict[int, _Stamp]:
    good: dict[int, _Stamp] = {}
    listed: list[Any] = []
    for name in ("stamps/stamps.json", "stamps/audit_heads.json"):
        value: list[Any] | None = js.get(name, list)
        if value:
            listed.extend(value)
    bad = 0
    for entry in listed:
        try:
            stamp = _Stamp(
                int(entry["id"]),
                str(entry["kind"]),
                str(entry["root"]),
                int(entry["leaf_count"]),
                int(entry["last_id"]),
            )
            token_name = str(entry["token"])
            digest = hashlib.sha256(bytes.fromhex(stamp.root)).digest()
        except (KeyError, TypeError, ValueError):
            report.fail("stamps: una entrada es ilegible", "stamps: an entry is unreadable")
            bad += 1
            continue
        token = files.get(token_name)
        if token is None:
            report.fail(
                f"{token_name}: falta el sello de tiempo {stamp.id}",
                f"{token_name}: time stamp {stamp.id} is missing",
            )
            bad += 1
            continue
        try:
            reply = check_reply(token, digest, None, tsa_ca)
        except TsaError as exc:
            report.fail(
                f"{token_name}: el sello de tiempo {stamp.id} no es válido para su raíz",
                f"{token_name}: time stamp {stamp.id} does not hold for its root: {exc}",
            )
            bad += 1
            continue
        if str(entry.get("gen_time", "")) != reply.gen_time.strftime(TIME_FORMAT):
            report.fail(
                f"{token_name}: la hora indicada no es la del sello",
                f"{token_name}: the stated time is not the token's",
            )
        good[stamp.id] = replace(stamp, gen_time=reply.gen_time.strftime(TIME_FORMAT))
    if listed and not bad:
        report.hold(
            f"sellos de tiempo: los {len(good)} sellos RFC 3161 sellan sus raíces"
            + ("" if tsa_ca else " (sin comprobar la cadena de la TSA: use --tsa-ca)"),
            f"time stamps: all {len(good)} RFC 3161 tokens stamp their roots"
            + (
                " and chain to the given TSA CA"
                if tsa_ca
                else " (TSA chain not checked: pass --tsa-ca)"
            ),
        )
    return good


def _sightings(js: _Json, report: Report) -> dict[int, dict[str, str]]:
    doc = js.get("sightings/sightings.json", dict)
    found: dict[int, dict[str, str]] = {}
    if doc is None:
        return found
    entries = doc.get("sightings")
    if not isinstance(entries, list):
        report.fail(
            "sightings/sightings.json no tiene lista de avistamientos",
            "sightings/sightings.json has no sightings list",
        )
        return found
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), int)
            or not isinstance(entry.get("fields"), dict)
            or not all(isinstance(v, str) for v in entry["fields"].values())
        ):
            report.fail(
                "sightings/sightings.json: una entrada es ilegible",
                "sightings/sightings.json: an entry is unreadable",
            )
            continue
        if entry["id"] in found:
            report.fail(
                f"avistamiento {entry['id']} repetido", f"sighting {entry['id']} appears twice"
            )
        found[entry["id"]] = entry["fields"]
    return found


def _check_sightings(
    js: _Json, files: dict[str, bytes], stamps: dict[int, _Stamp], report: Report
) -> dict[int, dict[str, str]]:
    sightings = _sightings(js, report)
    package = js.get("package.json", dict) or {}
    listed = package.get("sightings")
    if not isinstance(listed, list) or not all(isinstance(i, int) for i in listed):
        report.fail(
            "package.json no lista los avistamientos", "package.json does not list the sightings"
        )
        listed = []
    missing = sorted(set(listed) - set(sightings))
    extra = sorted(set(sightings) - set(listed))
    _named(
        report,
        [(f"avistamiento {i}", f"sighting {i}") for i in missing],
        "está en package.json pero falta en sightings/sightings.json (eliminado)",
        "listed in package.json but missing from sightings/sightings.json (removed)",
    )
    _named(
        report,
        [(f"avistamiento {i}", f"sighting {i}") for i in extra],
        "está en sightings/sightings.json pero no en package.json (añadido)",
        "in sightings/sightings.json but not listed in package.json (added)",
    )
    proofs = js.get("stamps/proofs.json", dict) or {}
    unproven: list[Named] = []
    altered: list[Named] = []
    late: list[Named] = []
    for sid, fields in sorted(sightings.items()):
        if fields.get("id") != str(sid):
            altered.append((f"avistamiento {sid}", f"sighting {sid}"))
            continue
        proof: Any = proofs.get(str(sid))
        try:
            stamp = stamps[int(proof["stamp"])]
            path = [bytes.fromhex(p) for p in proof["path"]]
            index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        except (KeyError, TypeError, ValueError):
            unproven.append((f"avistamiento {sid}", f"sighting {sid}"))
            continue
        leaf = leaf_hash(canonical_json(fields).encode("ascii"))
        try:
            root = root_from_proof(leaf, index, size, path)
        except MerkleError:
            root = b""
        if size != stamp.leaf_count or root.hex() != stamp.root:
            altered.append(
                (f"avistamiento {sid} (sello {stamp.id})", f"sighting {sid} (stamp {stamp.id})")
            )
        elif not fields.get("seen_at", "~") <= stamp.gen_time:
            # Both are UTC in one fixed-width format, so text order is time order.
            late.append(
                (f"avistamiento {sid} (sello {stamp.id})", f"sighting {sid} (stamp {stamp.id})")
            )
    _named(
        report,
        unproven,
        "sin sello de tiempo válido ni prueba de inclusión",
        "has no valid time stamp or inclusion proof",
    )
    _named(
        report,
        altered,
        "no coincide con la raíz sellada: sus datos se alteraron",
        "does not match the stamped root: its data was altered",
    )
    _named(
        report,
        late,
        "su hora de observación es posterior a la del sello que lo cubre",
        "its observation time is later than the time of the stamp that covers it",
    )
    if sightings and not (missing or extra or unproven or altered or late):
        report.hold(
            f"avistamientos: los {len(sightings)} están en raíces selladas, tal como se "
            "sellaron, y se observaron antes de la hora de su sello",
            f"sightings: all {len(sightings)} are in stamped roots, as they were stamped, "
            "and were seen before their stamp's time",
        )
    _check_csv(files.get("sightings/sightings.csv"), sightings, report)
    return sightings


def _check_csv(body: bytes | None, sightings: dict[int, dict[str, str]], report: Report) -> None:
    if body is None:
        report.fail("falta sightings/sightings.csv", "sightings/sightings.csv is missing")
        return
    try:
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        report.fail("sightings/sightings.csv ilegible", "sightings/sightings.csv is unreadable")
        return
    differ: list[Named] = []
    seen: set[str] = set()
    for row in rows:
        sid = row.get("id") or ""
        seen.add(sid)
        fields = sightings.get(int(sid)) if sid.isdigit() else None
        if fields is None:
            differ.append(f"sightings.csv {sid[:20]!r}")
            continue
        expected = {k: neutralise(fields.get(k, "")) for k in row}
        if any((row[k] or "") != (expected[k] or "") for k in row) or set(fields) - set(row):
            differ.append((f"sightings.csv avistamiento {sid}", f"sightings.csv sighting {sid}"))
    differ.extend(
        (f"sightings.csv avistamiento {i}", f"sightings.csv sighting {i}")
        for i in sorted(sightings)
        if str(i) not in seen
    )
    _named(
        report,
        differ,
        "la fila no dice lo mismo que sightings.json",
        "the row does not say what sightings.json says",
    )


def _torrents(files: dict[str, bytes], report: Report) -> dict[str, Torrent]:
    torrents: dict[str, Torrent] = {}
    for name in sorted(n for n in files if n.startswith("metadata/") and n.endswith(".info")):
        stated = name[len("metadata/") : -len(".info")]
        try:
            torrent = load_torrent(files[name])
        except MetainfoError as exc:
            report.fail(
                f"{name}: no es un diccionario info de torrent",
                f"{name}: not a torrent info dictionary: {exc}",
            )
            continue
        if stated not in (torrent.sha1, torrent.sha256):
            report.fail(
                f"{name}: su contenido no tiene el info-hash de su nombre (metadatos cambiados)",
                f"{name}: its content does not hash to the info-hash it is named by "
                "(metadata swapped)",
            )
            continue
        for key in (torrent.sha1, torrent.sha256):
            torrents[key] = torrent
    return torrents


def _check_transcripts(
    files: dict[str, bytes], js: _Json, sightings: dict[int, dict[str, str]], report: Report
) -> None:
    torrents = _torrents(files, report)
    index = js.get("transcripts/index.json", dict) or {}
    result = PieceCheck()
    count = 0
    before = len(report.problems)
    for name in sorted(
        n for n in files if n.startswith("transcripts/") and n != "transcripts/index.json"
    ):
        stem = name[len("transcripts/") : -len(".json")] if name.endswith(".json") else ""
        if not stem.isdigit() or int(stem) not in sightings:
            report.fail(
                f"{name}: no es de un avistamiento del paquete",
                f"{name}: not a transcript of a sighting in the package",
            )
            continue
        count += 1
        body = files[name]
        stored = index.get(stem)
        if not isinstance(stored, dict) or stored.get("sha256") != hashlib.sha256(body).hexdigest():
            report.fail(
                f"{name}: su SHA-256 no es el guardado al observar",
                f"{name}: its SHA-256 is not the one stored when observed",
            )
        try:
            doc = parse_transcript(body)
        except ValueError as exc:
            report.fail(f"{name}: transcripción ilegible", f"{name}: unreadable transcript: {exc}")
            continue
        fields = sightings[int(stem)]
        item = doc.get("item")
        if isinstance(item, dict) and (
            item.get("kind") != fields.get("item_kind")
            or str(item.get("value", "")).lower() != fields.get("item_value")
        ):
            report.fail(
                f"{name}: nombra otro elemento que su avistamiento",
                f"{name}: names another item than its sighting",
            )
        if doc.get("network") == "ed2k":
            check_ed2k_transcript(doc, name, result)
        else:
            check_transcript(doc, torrents, name, result)
    for es, en in result.problems[:MAX_NAMED]:
        report.fail(es, en)
    if len(result.problems) > MAX_NAMED:
        more = len(result.problems) - MAX_NAMED
        report.fail(f"y {more} fallos de piezas más", f"and {more} more piece failures")
    missing = [
        f"transcripts/{k}.json" for k in sorted(index) if f"transcripts/{k}.json" not in files
    ]
    _named(
        report,
        missing,
        "está en transcripts/index.json pero falta (eliminado)",
        "listed in transcripts/index.json but missing (removed)",
    )
    if len(report.problems) == before:
        report.hold(
            f"transcripciones: {count}; {result.checked} piezas comprobadas contra los metadatos "
            "o los hashes eD2K, "
            f"{result.verified} verificadas, {result.failed} registradas como fallidas",
            f"transcripts: {count}; {result.checked} pieces checked against the metadata "
            "or the eD2K hashes, "
            f"{result.verified} verified, {result.failed} recorded as failed",
        )
    if not count:
        report.note(
            "el paquete no trae transcripciones de prueba", "the package holds no proof transcripts"
        )


def _dicts(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects in list `key` of `doc`; anything else there counts for nothing."""
    value = doc.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _check_references(js: _Json, sightings: dict[int, dict[str, str]], report: Report) -> None:
    extract = js.get("hashsets/extract.json", dict) or {}
    sets = {s.get("name"): s for s in _dicts(extract, "hash_sets")}
    keys = {f.get("file_key") for f in _dicts(extract, "reference_files")}
    bad: list[Named] = []
    for sid, fields in sorted(sightings.items()):
        key = fields.get("file_key")
        if key is None:
            continue
        digest = fields.get("hash_set_sha256")
        named = sets.get(fields.get("hash_set"))
        if (
            key not in keys
            or named is None
            or (digest is not None and named.get("import_sha256") != digest)
        ):
            bad.append((f"avistamiento {sid}", f"sighting {sid}"))
    _named(
        report,
        bad,
        "su fichero de referencia o lista de hashes no está en hashsets/extract.json",
        "its reference file or hash set is not in hashsets/extract.json",
    )
    facts = js.get("enrichment/facts.json", dict) or {}
    versions = {d.get("data_version") for d in _dicts(facts, "data_versions")}
    unversioned = [
        f"enrichment {str(f.get('ip'))[:45]}"
        for f in _dicts(facts, "facts")
        if f.get("data_version") not in versions
    ]
    _named(
        report,
        unversioned,
        "su versión de datos no está descrita",
        "its data version is not described",
    )
    if not bad and not unversioned:
        report.hold(
            "listas de hashes y enriquecimiento: cubren lo que dicen los avistamientos, "
            "con sus versiones",
            "hash sets and enrichment: they cover what the sightings refer to, with their versions",
        )


def _check_audit(js: _Json, stamps: dict[int, _Stamp], report: Report) -> None:
    extract = js.get("audit/extract.json", dict)
    if extract is None:
        return
    records = extract.get("records")
    if not isinstance(records, list):
        report.fail("audit/extract.json sin registros", "audit/extract.json has no records")
        return
    plain = keyed = 0
    bad: list[Named] = []
    by_seq: dict[int, str] = {}
    previous: tuple[int, str] | None = None
    for record in records:
        try:
            body = {k: v for k, v in record.items() if k != "hash"}
            encoding = canonical_json(body).encode("ascii")
            fields = parse_canonical(encoding)
            stated = str(record["hash"])
        except (AuditEncodingError, AttributeError, KeyError, TypeError):
            bad.append(
                f"audit seq {str(record.get('seq') if isinstance(record, dict) else '?')[:20]}"
            )
            continue
        if hashlib.sha256(encoding).hexdigest() == stated:
            plain += 1
        else:
            keyed += 1
        if (
            previous is not None
            and previous[0] + 1 == fields.seq
            and fields.prev_hash != previous[1]
        ):
            bad.append(f"audit seq {fields.seq}")
        previous = (fields.seq, stated)
        by_seq[fields.seq] = stated
    for stamp in stamps.values():
        if (
            stamp.kind == "audit_head"
            and stamp.last_id in by_seq
            and by_seq[stamp.last_id] != stamp.root
        ):
            bad.append(
                (
                    f"audit seq {stamp.last_id} (sello {stamp.id})",
                    f"audit seq {stamp.last_id} (stamp {stamp.id})",
                )
            )
    _named(
        report,
        bad,
        "registro de auditoría alterado o mal encadenado",
        "audit record altered or not linked",
    )
    if not bad:
        report.hold(
            f"auditoría: {len(records)} registros canónicos y encadenados ({plain} con SHA-256 "
            f"comprobado; {keyed} con HMAC de la clave de la unidad, que 'atalaya audit verify' "
            "comprueba)",
            f"audit: {len(records)} records canonical and linked ({plain} with their SHA-256 "
            f"checked; {keyed} HMAC'd under the unit's key, which 'atalaya audit verify' checks)",
        )


def verify_package(
    data: bytes,
    *,
    ca: Sequence[x509.Certificate] = (),
    tsa_ca: Sequence[x509.Certificate] = (),
) -> Report:
    """Check the package in `data`; the report says what holds and names what does not."""
    report = Report()
    try:
        files = read_package(data)
    except PackageFormatError as exc:
        report.refused = True
        report.fail(f"paquete rechazado: {exc}", f"package refused: {exc}")
        return report
    js = _Json(files, report)
    _check_manifest(files, report)
    _check_signature(files, ca, report)
    stamps = _check_stamps(files, js, tsa_ca, report)
    sightings = _check_sightings(js, files, stamps, report)
    _check_transcripts(files, js, sightings, report)
    _check_references(js, sightings, report)
    _check_audit(js, stamps, report)
    return report
