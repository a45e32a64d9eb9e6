"""One document model for a case's judicial and preservation requests, built from the store.

Both renderings (the Typst template for the PDF, the docxtpl template for
the DOCX) read this model and nothing else, so the two say the same thing
and nothing in them is typed twice: the unit, court, operators and officers
come from the request settings (`atalaya.cases.courts`), everything about
the facts from the case's pinned sightings, their enrichment and the hash
sets that matched them.

Every value here is display-ready text in Spanish. Strings a peer wrote
(advertised names, client names) pass through `shown`: control and
formatting characters (bidirectional overrides included) become visible
escapes, and length is bounded, so a peer can neither break a document's
structure nor make it read other than it is. The templates then insert them
as data, never as markup.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from atalaya.accounts import User
from atalaya.cases.courts import Court, Operator, RequestConfig
from atalaya.cases.records import Case
from atalaya.cases.retention import RetentionRule, expired
from atalaya.enrich.store import enrichment_for_ips
from atalaya.hashsets import lookup
from atalaya.hashsets.categories import Category
from atalaya.leads.storage import chunks
from atalaya.store.tables import hash_set, lead, lead_presence, sighting, unit
from atalaya.store.times import utc

MAX_SHOWN = 160

MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)

NETWORKS = {"bittorrent": "BitTorrent", "ed2k": "eDonkey/Kad (eD2K)"}
ALGORITHMS = {
    "btih": "BitTorrent v1 (infohash SHA-1)",
    "btih2": "BitTorrent v2 (infohash SHA-256)",
    "btmh": "BitTorrent v2 (infohash SHA-256)",
    "ed2k": "eD2K (MD4)",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "md5": "MD5",
}
FOUND_BY = {
    "dht": "DHT",
    "tracker": "tracker",
    "pex": "intercambio de pares (PEX)",
    "operator": "indicación del operador",
}
CATEGORIES = {
    Category.NOT_PERTINENT: "no pertinente",
    Category.UNRATED: "sin clasificar",
    Category.EXPLOITATIVE: "explotación infantil (no abuso)",
    Category.ABUSE: "material de abuso sexual infantil",
    Category.SEVERE_ABUSE: "material de abuso sexual infantil grave",
}
SCHEMES = {
    "vics": "Project VIC / VICS 2.0 (categorías numéricas de la fuente)",
    "csv": "etiquetas de categoría de la fuente (CSV)",
    "lines": "categoría única asignada a la lista al importarla",
}
# What a range flag means for whoever must answer for the address.
NOTES = {
    "cgnat": "CGNAT: dirección compartida; identificar por IP, puerto de origen e instante",
    "mobile": "red móvil: identificar por IP, puerto de origen e instante",
    "vpn": "rango de VPN: puede no identificar al usuario final",
    "anonymiser": "servicio de anonimato: puede no identificar al usuario final",
    "hosting": "rango de alojamiento (servidor): el abonado puede ser un proveedor",
}


def shown(value: str | None, limit: int = MAX_SHOWN) -> str:
    """A peer-supplied string made safe to print: controls and format characters
    (bidi overrides, zero-width joiners) shown as escapes, length bounded."""
    if value is None:
        return ""
    parts: list[str] = []
    for ch in value:
        if unicodedata.category(ch)[0] == "C":
            code = ord(ch)
            parts.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            parts.append(ch)
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def spanish_date(day: date) -> str:
    return f"{day.day} de {MONTHS[day.month - 1]} de {day.year}"


def utc_text(at: datetime) -> str:
    """To the microsecond, in UTC."""
    return utc(at).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def offset_text(offset_seconds: int) -> str:
    sign = "+" if offset_seconds >= 0 else "-"
    minutes = abs(offset_seconds) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_text(at: datetime, zone_name: str | None) -> str:
    """The same instant in the place's time zone, with its offset stated."""
    try:
        zone = ZoneInfo(zone_name) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return "zona horaria desconocida (UTC+00:00 indicado arriba)"
    local = utc(at).astimezone(zone)
    offset = local.utcoffset()
    seconds = 0 if offset is None else int(offset.total_seconds())
    return f"{local:%Y-%m-%d %H:%M:%S.%f} ({offset_text(seconds)}, {zone_name})"


@dataclass(frozen=True)
class Party:
    """A court or an operator as the document names it."""

    name: str
    address: str
    detail: str  # the place code a court serves; "AS64500" for an operator
    example: bool


@dataclass(frozen=True)
class Officer:
    username: str
    professional_id: str


@dataclass(frozen=True)
class HashSetInfo:
    name: str
    source: str
    version: str
    scheme: str
    sha256: str


@dataclass(frozen=True)
class FileEntry:
    number: int
    network: str
    identifier: str  # the watched identifier the peer offered, "algorithm: hex"
    reference: str  # the reference file's hash that matched, "algorithm: hex", or ""
    advertised_name: str  # peer-supplied, escaped
    category: str  # internal scale, in words
    category_source: str  # the hash set's own label
    hash_set: str
    proof: str  # pieces verified from this single peer, and when
    sightings: int


@dataclass(frozen=True)
class Observation:
    number: int
    sighting_id: int
    ip: str
    source_port: int
    protocol: str
    utc: str
    local: str
    network: str
    client: str  # peer-supplied, escaped
    peer_id: str
    operator: str
    asn: str
    note: str


@dataclass(frozen=True)
class JudicialRequest:
    kind: str  # "judicial"
    case_id: int
    lead_id: int
    atestado: str
    place: str
    date: str
    unit: str
    unit_address: str
    unit_contact: str
    officers: list[Officer]
    court: Party
    operators: list[Party]
    secrecy: bool
    tools: list[str]
    networks: list[str]
    found_by: list[str]
    hash_sets: list[HashSetInfo]
    files: list[FileEntry]
    file_count: int
    days_seen: int
    files_text: str  # "3 ficheros"
    days_text: str  # "1 día"
    first_seen: str
    last_seen: str
    observations: list[Observation]
    omitted_expired: int
    location: str
    response_days: int
    delivery: str
    preservation: str
    clock_offset: str
    sighting_ids: list[int]

    def data(self) -> dict[str, Any]:
        """The model as plain JSON-ready data (the templates' input)."""
        return asdict(self)


@dataclass(frozen=True)
class PreservationRequest:
    kind: str  # "preservation"
    case_id: int
    lead_id: int
    atestado: str
    place: str
    date: str
    unit: str
    unit_address: str
    unit_contact: str
    officers: list[Officer]
    operators: list[Party]
    observations: list[Observation]
    extension: bool
    period_start: str
    period_end: str
    days: int
    sighting_ids: list[int]

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseFacts:
    """What both documents need, read once from the store."""

    case: Case
    unit_name: str
    unit_contact: str
    unit_heading: str
    unit_address: str
    place: str
    location: str
    court: Court
    officers: list[Officer]
    rows: list[Any]  # live pinned sightings, oldest first
    omitted_expired: int
    facts: Mapping[str, Any]  # ip -> _IpFacts
    operators: list[Operator]  # in order of first observation
    time_zone: str | None  # the lead's, for addresses whose own zone is unknown


@dataclass(frozen=True)
class _IpFacts:
    asn: int | None
    isp: str | None
    time_zone: str | None
    flags: tuple[str, ...]


def _party_court(court: Court) -> Party:
    return Party(court.name, court.address, court.place, court.example)


def _party_operator(op: Operator) -> Party:
    return Party(op.legal_name, op.address, f"AS{op.asn}", op.example)


def _ip_facts(conn: Connection, lead_id: int, ips: Sequence[str]) -> dict[str, _IpFacts]:
    """Operator, AS, zone and flags per address: its enrichment, else the lead's presence."""
    found: dict[str, _IpFacts] = {
        ip: _IpFacts(e.asn, e.isp, e.time_zone, tuple(sorted(e.flags)))
        for ip, e in enrichment_for_ips(conn, ips).items()
    }
    missing = [ip for ip in ips if ip not in found]
    for part in chunks(missing):
        p = lead_presence.c
        rows = conn.execute(
            select(p.ip, p.asn, p.isp, p.time_zone, p.flags)
            .where(p.ip.in_(list(part)))
            .order_by(p.lead_id != lead_id, p.id.desc())
        )
        for r in rows:
            if r.ip not in found:
                found[r.ip] = _IpFacts(r.asn, r.isp, r.time_zone, tuple(sorted(r.flags or ())))
    return found


def gather(
    conn: Connection,
    user: User,
    case: Case,
    config: RequestConfig,
    rule: RetentionRule,
    now: datetime,
    pinned: Sequence[int],
) -> CaseFacts:
    """Everything about a case the documents need; RequestConfigError naming
    anything the settings lack (nothing has been written then)."""
    place_row = conn.execute(
        select(
            lead.c.municipality_code,
            lead.c.municipality_name,
            lead.c.province_code,
            lead.c.province_name,
            lead.c.country,
            lead.c.time_zone,
        ).where(lead.c.id == case.lead_id)
    ).first()
    municipality = place_row.municipality_code if place_row else None
    province = place_row.province_code if place_row else None
    location = ", ".join(
        p
        for p in ((place_row.municipality_name, place_row.province_name) if place_row else ())
        if p
    )
    court = config.court_for(municipality, province, location or f"lead {case.lead_id}")
    rows: list[Any] = []
    for part in chunks(list(pinned)):
        rows.extend(conn.execute(select(sighting).where(sighting.c.id.in_(list(part)))).all())
    rows.sort(key=lambda r: (utc(r.seen_at), r.id))
    live = [r for r in rows if not expired(utc(r.seen_at), rule, now)]
    ips = sorted({r.ip for r in live})
    facts = _ip_facts(conn, case.lead_id, ips)
    operators: dict[int, Operator] = {}
    for r in live:
        f = facts.get(r.ip)
        op = config.operator_for(f.asn if f else None, f.isp if f else None, r.ip)
        operators.setdefault(op.asn, op)
    officers = [Officer(user.username, config.officer_id(user.username))]
    if case.assignee and case.assignee != user.username:
        officers.append(Officer(case.assignee, config.officer_id(case.assignee)))
    unit_row = conn.execute(
        select(unit.c.name, unit.c.contact).where(unit.c.id == case.unit_id)
    ).one()
    settings = config.unit(unit_row.name)
    return CaseFacts(
        case=case,
        unit_name=unit_row.name,
        unit_contact=unit_row.contact,
        unit_heading=settings.heading if settings else unit_row.name,
        unit_address=settings.address if settings else unit_row.contact,
        place=settings.place
        if settings
        else (place_row.municipality_name if place_row else "") or "",
        location=location or "lugar no determinado",
        court=court,
        officers=officers,
        rows=live,
        omitted_expired=len(rows) - len(live),
        facts=facts,
        operators=list(operators.values()),
        time_zone=place_row.time_zone if place_row else None,
    )


def _protocol(r: Any) -> str:
    network = NETWORKS.get(r.network, shown(r.network, 20))
    # A handshake (client or peer id known) or a verified piece means the peer
    # answered on a TCP connection; otherwise the address was only announced.
    if r.client or r.peer_id or r.pieces_verified:
        return f"{network}, TCP"
    return f"{network}, anuncio {FOUND_BY.get(r.found_by, shown(r.found_by, 20))}"


def _observations(cf: CaseFacts) -> list[Observation]:
    result = []
    by_asn = {op.asn: op for op in cf.operators}
    for n, r in enumerate(cf.rows, start=1):
        f = cf.facts.get(r.ip)
        asn = f.asn if f else None
        op = by_asn.get(asn) if asn is not None else None
        notes = [NOTES[flag] for flag in (f.flags if f else ()) if flag in NOTES]
        if ":" in r.ip:
            notes.append("IPv6")
        result.append(
            Observation(
                number=n,
                sighting_id=int(r.id),
                ip=r.ip,
                source_port=int(r.port),
                protocol=_protocol(r),
                utc=utc_text(r.seen_at),
                local=local_text(r.seen_at, (f.time_zone if f else None) or cf.time_zone),
                network=NETWORKS.get(r.network, shown(r.network, 20)),
                client=shown(r.client, 60) or "no declarado",
                peer_id=r.peer_id or "no declarado",
                operator=op.legal_name if op else (shown(f.isp if f else None) or "desconocido"),
                asn=f"AS{asn}" if asn is not None else "desconocido",
                note="; ".join(notes),
            )
        )
    return result


def _hash_sets(conn: Connection, names: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(names))
    if not wanted:
        return {}
    return {r.name: r for r in conn.execute(select(hash_set).where(hash_set.c.name.in_(wanted)))}


def _files(conn: Connection, rows: Sequence[Any], sets: Mapping[str, Any]) -> list[FileEntry]:
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for r in rows:
        groups.setdefault((r.network, r.item_kind, r.item_value), []).append(r)
    labels: dict[tuple[int, str], tuple[str, str | None]] = {}
    keys = {(sets[r.hash_set].id, r.file_key) for r in rows if r.file_key and r.hash_set in sets}
    for file in lookup.files_by_keys(
        conn, {key for _, key in keys}, hash_set_ids={set_id for set_id, _ in keys}
    ):
        if (file.hash_set_id, file.file_key) in keys:
            labels[file.hash_set_id, file.file_key] = (file.category_label, file.name)
    entries = []
    for n, ((network, kind, value), group) in enumerate(sorted(groups.items()), start=1):
        first = group[0]
        categories = [r.category for r in group if r.category is not None]
        category = Category(max(categories)) if categories else None
        named = next((r.advertised_name for r in group if r.advertised_name), None)
        set_row = sets.get(first.hash_set) if first.hash_set else None
        label, ref_name = (
            labels.get((set_row.id, first.file_key), ("", None)) if set_row else ("", None)
        )
        proofs = [r for r in group if r.proof]
        if proofs:
            best = max(proofs, key=lambda r: (r.pieces_verified, -utc(r.seen_at).timestamp()))
            kind_text = (
                "fichero completo recalculado"
                if best.proof_kind == "full_file"
                else plural(
                    best.pieces_verified,
                    "pieza descargada y verificada",
                    "piezas descargadas y verificadas",
                )
            )
            proof = (
                f"{kind_text} ({best.bytes_downloaded} bytes) de este único par "
                f"{best.ip}:{best.port}, el {utc_text(best.seen_at)}"
            )
        else:
            proof = "ofrecido por el par; sin descarga verificada"
        algorithm, _, digest = (first.file_key or "").partition(":")
        entries.append(
            FileEntry(
                number=n,
                network=NETWORKS.get(network, shown(network, 20)),
                identifier=f"{ALGORITHMS.get(kind, shown(kind, 20))}: {value}",
                reference=f"{ALGORITHMS.get(algorithm, shown(algorithm, 20))}: {digest}"
                if digest
                else "",
                advertised_name=shown(named or ref_name) or "no anunciado",
                category=CATEGORIES[category] if category is not None else "sin categoría",
                category_source=shown(label, 60) or "—",
                hash_set=shown(first.hash_set, 80) or "—",
                proof=proof,
                sightings=len(group),
            )
        )
    return entries


def _common(cf: CaseFacts, config: RequestConfig, now: datetime) -> dict[str, Any]:
    today = utc(now).date()
    return {
        "case_id": cf.case.id,
        "lead_id": cf.case.lead_id,
        "atestado": config.atestado_number(
            year=today.year, unit_id=cf.case.unit_id, case=cf.case.id
        ),
        "place": cf.place,
        "date": spanish_date(today),
        "unit": cf.unit_heading,
        "unit_address": cf.unit_address,
        "unit_contact": cf.unit_contact,
        "officers": cf.officers,
        "operators": [_party_operator(op) for op in cf.operators],
        "observations": _observations(cf),
        "sighting_ids": [int(r.id) for r in cf.rows],
    }


def judicial_request(
    conn: Connection,
    cf: CaseFacts,
    config: RequestConfig,
    now: datetime,
    *,
    secrecy: bool,
    preservation: str,
) -> JudicialRequest:
    rows = cf.rows
    sets = _hash_sets(conn, (r.hash_set for r in rows if r.hash_set))
    days = {utc(r.seen_at).date() for r in rows}
    file_count = len({(r.network, r.item_kind, r.item_value) for r in rows})
    offsets = [abs(r.clock_offset_s) for r in rows if r.clock_offset_s is not None]
    clock = (
        f"desfase máximo medido del reloj del equipo de captura: {max(offsets):.3f} s"
        if offsets
        else "sin medición de desfase registrada en las observaciones"
    )
    return JudicialRequest(
        kind="judicial",
        **_common(cf, config, now),
        court=_party_court(cf.court),
        secrecy=secrecy,
        tools=sorted({shown(r.observer, 60) for r in rows}),
        networks=sorted({NETWORKS.get(r.network, shown(r.network, 20)) for r in rows}),
        found_by=sorted({FOUND_BY.get(r.found_by, shown(r.found_by, 20)) for r in rows}),
        hash_sets=[
            HashSetInfo(
                name=shown(s.name, 80),
                source=shown(s.source, 120),
                version=shown(s.version, 80) or "sin versión declarada",
                scheme=SCHEMES.get(s.format, shown(s.format, 20)),
                sha256=s.file_sha256,
            )
            for s in sets.values()
        ],
        files=_files(conn, rows, sets),
        file_count=file_count,
        days_seen=len(days),
        files_text=plural(file_count, "fichero", "ficheros distintos"),
        days_text=plural(len(days), "día", "días distintos"),
        first_seen=utc_text(rows[0].seen_at),
        last_seen=utc_text(rows[-1].seen_at),
        omitted_expired=cf.omitted_expired,
        location=cf.location,
        response_days=config.response_days,
        delivery=config.delivery,
        preservation=preservation,
        clock_offset=clock,
    )


def preservation_request(
    cf: CaseFacts,
    config: RequestConfig,
    now: datetime,
    *,
    extension: bool,
    start: datetime,
    end: datetime,
    days: int,
) -> PreservationRequest:
    return PreservationRequest(
        kind="preservation",
        **_common(cf, config, now),
        extension=extension,
        period_start=spanish_date(start.astimezone(UTC).date()),
        period_end=spanish_date(end.astimezone(UTC).date()),
        days=days,
    )
