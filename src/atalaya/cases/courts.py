"""The unit's request settings: courts by place, operators by AS number, officers' ids.

A judicial request is addressed to a court chosen by where the connection
was placed (a municipality's court first, else the province's) and names
the operator that must answer (by the AS number enrichment found), with its
legal name and address for service. Those are facts a unit knows and the
store does not, so they live in a TOML file named by `ATALAYA_REQUESTS_CONFIG`;
without it the file shipped in `atalaya/cases/templates/solicitudes.toml`
applies, whose courts and operators are made-up examples (private-use AS
numbers, no real address) for the lab, the demo and the tests.

Anything a document needs and the file lacks is one `RequestConfigError`
naming it and the file to add it to: a request never goes out with a blank.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from atalaya.errors import N_, AtalayaError

CONFIG_ENV = "ATALAYA_REQUESTS_CONFIG"
TEMPLATES_ENV = "ATALAYA_REQUESTS_TEMPLATES"
SHIPPED = "solicitudes.toml"
MAX_TEXT = 500
_PROVINCE = re.compile(r"\d{2}")
_MUNICIPALITY = re.compile(r"\d{5}")


class RequestConfigError(AtalayaError):
    """The request settings are unreadable, or lack what a document needs."""


@dataclass(frozen=True)
class Court:
    name: str
    address: str
    place: str  # the municipality (5 digits) or province (2 digits) code it serves
    example: bool = False


@dataclass(frozen=True)
class Operator:
    asn: int
    legal_name: str
    address: str  # address for service of the court's order
    example: bool = False


@dataclass(frozen=True)
class UnitSettings:
    heading: str  # the unit's full name as it heads its documents
    place: str  # where its documents are signed
    address: str


@dataclass(frozen=True)
class RequestConfig:
    source: str  # the file it was read from, for error messages
    courts: Mapping[str, Court] = field(default_factory=dict)  # by place code
    operators: Mapping[int, Operator] = field(default_factory=dict)
    officers: Mapping[str, str] = field(default_factory=dict)  # username -> professional id
    units: Mapping[str, UnitSettings] = field(default_factory=dict)  # by unit name
    atestado: str = "{year}/{unit_id:03d}/{case:06d}"
    response_days: int = 10
    delivery: str = ""

    def court_for(self, municipality: str | None, province: str | None, where: str) -> Court:
        """The court of the municipality, else of the province; an error naming both."""
        for code in (municipality, province):
            if code and code in self.courts:
                return self.courts[code]
        raise RequestConfigError(
            N_(
                "no court configured for %(where)s (municipality %(municipality)s, "
                "province %(province)s) in %(source)s: add a [[court]] with "
                'place = "%(place)s", name and address'
            ),
            where=where,
            municipality=municipality or N_("unknown"),
            province=province or N_("unknown"),
            source=self.source,
            place=province or municipality or "NN",
        )

    def operator_for(self, asn: int | None, isp: str | None, ip: str) -> Operator:
        if asn is None:
            raise RequestConfigError(
                N_(
                    "no AS number known for %(ip)s: "
                    "run 'atalaya enrich' so the operator can be named"
                ),
                ip=ip,
            )
        found = self.operators.get(asn)
        if found is None:
            if isp:
                raise RequestConfigError(
                    N_("no operator configured for AS%(asn)s (%(isp)s, seen at %(ip)s) "
                       "in %(source)s: add an [[operator]] with asn = %(asn)s, legal_name and "
                       "address"),
                    asn=asn, isp=isp, ip=ip, source=self.source,
                )  # fmt: skip
            raise RequestConfigError(
                N_("no operator configured for AS%(asn)s (ISP unknown, seen at %(ip)s) "
                   "in %(source)s: add an [[operator]] with asn = %(asn)s, legal_name and "
                   "address"),
                asn=asn, ip=ip, source=self.source,
            )  # fmt: skip
        return found

    def officer_id(self, username: str) -> str:
        found = self.officers.get(username)
        if not found:
            raise RequestConfigError(
                N_(
                    "no professional id for user %(user)r in %(source)s: add it under "
                    '[officers] as %(name)s = "…"'
                ),
                user=username,
                source=self.source,
                name=username,
            )
        return found

    def unit(self, name: str) -> UnitSettings | None:
        return self.units.get(name)

    def atestado_number(self, *, year: int, unit_id: int, case: int) -> str:
        try:
            return self.atestado.format(year=year, unit_id=unit_id, case=case)
        except (KeyError, IndexError, ValueError) as exc:
            raise RequestConfigError(
                f"atestado format {self.atestado!r} in {self.source} is not usable ({exc}): "
                "use the fields {year}, {unit_id} and {case}"
            ) from None


def _text(value: Any, what: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestConfigError(f"{source}: {what} must be a non-empty text")
    if len(value) > MAX_TEXT:
        raise RequestConfigError(f"{source}: {what} is longer than {MAX_TEXT} characters")
    return value.strip()


def _table_list(data: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RequestConfigError(f"{source}: [[{key}]] must be a list of tables")
    return items


def parse_config(text: str, source: str) -> RequestConfig:
    """Settings from TOML text; RequestConfigError naming the file and the entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequestConfigError(f"{source} is not valid TOML: {exc}") from None
    courts: dict[str, Court] = {}
    for n, item in enumerate(_table_list(data, "court", source), start=1):
        place = _text(item.get("place"), f"court {n}: place", source)
        if not (_PROVINCE.fullmatch(place) or _MUNICIPALITY.fullmatch(place)):
            raise RequestConfigError(
                f"{source}: court {n}: place {place!r} must be an INE province (2 digits) "
                "or municipality (5 digits) code"
            )
        if place in courts:
            raise RequestConfigError(f"{source}: two courts for place {place}")
        courts[place] = Court(
            name=_text(item.get("name"), f"court {n}: name", source),
            address=_text(item.get("address"), f"court {n}: address", source),
            place=place,
            example=bool(item.get("example", False)),
        )
    operators: dict[int, Operator] = {}
    for n, item in enumerate(_table_list(data, "operator", source), start=1):
        asn = item.get("asn")
        if not isinstance(asn, int) or isinstance(asn, bool) or not 0 < asn < 2**32:
            raise RequestConfigError(f"{source}: operator {n}: asn must be an AS number")
        if asn in operators:
            raise RequestConfigError(f"{source}: two operators for AS{asn}")
        operators[asn] = Operator(
            asn=asn,
            legal_name=_text(item.get("legal_name"), f"operator {n}: legal_name", source),
            address=_text(item.get("address"), f"operator {n}: address", source),
            example=bool(item.get("example", False)),
        )
    officers_data = data.get("officers", {})
    if not isinstance(officers_data, dict):
        raise RequestConfigError(f"{source}: [officers] must be a table of username = id")
    officers = {str(k): _text(v, f"officers.{k}", source) for k, v in officers_data.items()}
    units: dict[str, UnitSettings] = {}
    for n, item in enumerate(_table_list(data, "unit", source), start=1):
        name = _text(item.get("name"), f"unit {n}: name", source)
        units[name] = UnitSettings(
            heading=_text(item.get("heading", name), f"unit {n}: heading", source),
            place=_text(item.get("place"), f"unit {n}: place", source),
            address=_text(item.get("address"), f"unit {n}: address", source),
        )
    req = data.get("requests", {})
    if not isinstance(req, dict):
        raise RequestConfigError(f"{source}: [requests] must be a table")
    days = req.get("response_days", 10)
    if not isinstance(days, int) or not 1 <= days <= 90:
        raise RequestConfigError(f"{source}: requests.response_days must be 1 to 90")
    return RequestConfig(
        source=source,
        courts=courts,
        operators=operators,
        officers=officers,
        units=units,
        atestado=_text(req.get("atestado", RequestConfig.atestado), "requests.atestado", source),
        response_days=days,
        delivery=_text(
            req.get(
                "delivery",
                "por vía electrónica, en fichero firmado, a la unidad solicitante",
            ),
            "requests.delivery",
            source,
        ),
    )


def shipped_config_text() -> str:
    return resources.files("atalaya.cases.templates").joinpath(SHIPPED).read_text("utf-8")


def load_config(environ: Mapping[str, str] | None = None) -> RequestConfig:
    """The file named by ATALAYA_REQUESTS_CONFIG, else the shipped examples."""
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV)
    if not path:
        return parse_config(shipped_config_text(), f"the shipped example {SHIPPED}")
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestConfigError(f"{CONFIG_ENV}={path}: cannot read it ({exc})") from None
    return parse_config(text, path)


def templates_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """The unit's own templates folder (ATALAYA_REQUESTS_TEMPLATES), if set."""
    env = os.environ if environ is None else environ
    value = env.get(TEMPLATES_ENV)
    if not value:
        return None
    folder = Path(value)
    if not folder.is_dir():
        raise RequestConfigError(f"{TEMPLATES_ENV}={value}: no such folder")
    return folder
