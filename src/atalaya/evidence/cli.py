"""`atalaya evidence stamp|verify-stamps|proof|export|verify`."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from cryptography import x509
from sqlalchemy import select

from atalaya.audit.log import Action, Outcome, local_details, log_event
from atalaya.audit.purpose_cli import PurposeOption, read_details, require_named_case
from atalaya.console import err, out, print_json, progress, store_engine
from atalaya.errors import AtalayaError
from atalaya.evidence.merkle import inclusion_proof
from atalaya.evidence.package import MAX_RECIPIENT, export_case
from atalaya.evidence.package_zip import MAX_PACKAGE_BYTES
from atalaya.evidence.stamping import encode_row, unpack_leaves
from atalaya.evidence.stamps import (
    DEFAULT_BATCH,
    MAX_BATCH,
    SIGHTINGS,
    TSA_URL_ENV,
    StoredStamp,
    stamp_audit_head,
    stamp_sightings,
    tsa_stamper,
    unstamped_count,
    verify_stamps,
)
from atalaya.evidence.tsa_client import DEFAULT_TIMEOUT_S, check_url
from atalaya.evidence.tsp import TsaError, load_ca_file
from atalaya.evidence.verify_package import verify_package
from atalaya.signing import P12_ENV, PKCS11_LIB_ENV, key_from_env
from atalaya.store.tables import sighting, timestamp_token

app = typer.Typer(
    help="Evidence: RFC 3161 time stamps, signed case packages and their offline check.",
    no_args_is_help=True,
)

STAMP_ACTION = "evidence_stamp"
VERIFY_ACTION = "evidence_verify"


def _shown_url(url: str) -> str:
    """The URL without user name or password, as stored and logged."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def _read_ca(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AtalayaError(f"cannot read the CA file {path}: {exc.strerror or exc}") from exc
    return load_ca_file(data, str(path))


CaOption = Annotated[
    Path | None,
    typer.Option(
        "--tsa-ca",
        help="PEM file of the TSA's CA certificate(s), as 'openssl ts -verify -CAfile' takes.",
        show_default=False,
    ),
]


@app.command("stamp")
def stamp_command(
    ctx: typer.Context,
    tsa: Annotated[
        str | None,
        typer.Option("--tsa", help=f"The TSA's URL (default: ${TSA_URL_ENV}).", show_default=False),
    ] = None,
    tsa_ca: CaOption = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_BATCH, help="Sightings per stamp, at most.")
    ] = DEFAULT_BATCH,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, max=300, help="Seconds to wait for the TSA.")
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Stamp every sighting not yet stamped (merkle roots of batches) and the audit log's head."""
    url = tsa or os.environ.get(TSA_URL_ENV)
    if not url:
        raise AtalayaError(f"no time-stamp authority: pass --tsa URL or set {TSA_URL_ENV}")
    check_url(url)
    shown = _shown_url(url)
    roots = _read_ca(tsa_ca) if tsa_ca is not None else []
    engine = store_engine(ctx)
    stamper = tsa_stamper(url, roots, timeout)
    total = unstamped_count(engine)
    stamped: list[StoredStamp] = []
    details: dict[str, object] = {**local_details(), "tsa_url": shown, "batch": batch}
    try:
        with progress(disable=total == 0) as bar:
            task = bar.add_task("stamping sightings", total=total)

            def advance(done: StoredStamp) -> None:
                stamped.append(done)
                bar.advance(task, done.leaf_count)

            stamp_sightings(engine, stamper, shown, batch_size=batch, on_batch=advance)
    except TsaError as exc:
        log_event(
            engine,
            STAMP_ACTION,
            outcome=Outcome.ERROR,
            details={**details, **_summary(stamped), "error": str(exc)[:500]},
        )
        raise
    entry = log_event(engine, STAMP_ACTION, details={**details, **_summary(stamped)})
    for done in stamped:
        err.print(
            f"stamp {done.id}: sightings {done.first_id}-{done.last_id} ({done.leaf_count}), "
            f"root {done.root}, time {done.gen_time.isoformat()}"
        )
    try:
        head = stamp_audit_head(engine, stamper, shown)
    except TsaError as exc:
        log_event(
            engine,
            STAMP_ACTION,
            outcome=Outcome.ERROR,
            object_type="audit_head",
            details={**details, "error": str(exc)[:500]},
        )
        raise
    count = sum(s.leaf_count for s in stamped)
    err.print(
        f"{count} sightings stamped in {len(stamped)} batches"
        + (
            f"; audit head {head.last_id}:{head.root} stamped at {head.gen_time.isoformat()}"
            if head is not None
            else f"; audit log empty after record {entry.fields.seq}"
        )
        + f" by {shown}"
    )


def _summary(stamped: list[StoredStamp]) -> dict[str, object]:
    return {
        "stamps": [s.id for s in stamped][:1000],
        "sightings": sum(s.leaf_count for s in stamped),
        "first_id": stamped[0].first_id if stamped else None,
        "last_id": stamped[-1].last_id if stamped else None,
    }


@app.command("verify-stamps")
def verify_stamps_command(
    ctx: typer.Context,
    tsa_ca: CaOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Re-check every stored token offline; exit 1 naming every sighting changed since stamped."""
    if tsa_ca is None:
        raise AtalayaError(
            "pass --tsa-ca FILE: the TSA's CA certificate(s) the tokens must chain to"
        )
    roots = _read_ca(tsa_ca)
    engine = store_engine(ctx)
    result = verify_stamps(engine, roots)
    log_event(
        engine,
        VERIFY_ACTION,
        outcome=Outcome.OK,
        details={
            **local_details(),
            "ok": result.ok,
            "stamps": result.stamps,
            "altered": result.altered[:1000],
            "inserted": result.inserted[:1000],
        },
    )
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "stamps": result.stamps,
                "sightings": result.sightings,
                "audit_heads": result.audit_heads,
                "altered": result.altered,
                "inserted": result.inserted,
                "problems": result.problems,
            }
        )
    if result.ok:
        err.print(
            f"{result.stamps} stamps hold: {result.sightings} sightings match their stamped "
            f"roots, {result.audit_heads} audit heads are in the chain"
        )
        return
    for problem in result.problems:
        err.print(f"[bold red]stamp check failed[/] {problem}")
    raise typer.Exit(1)


@app.command("proof")
def proof_command(
    ctx: typer.Context,
    sighting_id: Annotated[int, typer.Argument(min=1, max=2**63 - 1, help="The sighting's id.")],
    purpose: PurposeOption = None,
) -> None:
    """Print, as JSON, one sighting's canonical encoding and its inclusion proof in a stamp.

    The encoding holds the sighting's address: a read of personal data, so it
    needs --purpose and is audited.
    """
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    with engine.connect() as conn:
        stamp_row = (
            conn.execute(
                select(timestamp_token)
                .where(
                    timestamp_token.c.kind == SIGHTINGS,
                    timestamp_token.c.first_id <= sighting_id,
                    timestamp_token.c.last_id >= sighting_id,
                )
                .order_by(timestamp_token.c.id)
                .limit(1)
            )
            .mappings()
            .one_or_none()
        )
        row = conn.execute(select(sighting).where(sighting.c.id == sighting_id)).mappings().first()
    if row is None:
        raise AtalayaError(f"no sighting {sighting_id}")
    if stamp_row is None:
        raise AtalayaError(
            f"sighting {sighting_id} is not stamped yet: run 'atalaya evidence stamp'"
        )
    batch = unpack_leaves(bytes(stamp_row["leaves"] or b""))
    if sighting_id not in batch.ids:
        raise AtalayaError(
            f"sighting {sighting_id} is inside stamp {stamp_row['id']} but not in it"
        )
    index = batch.ids.index(sighting_id)
    encoding = encode_row(row)
    log_event(engine, Action.VIEW, object_type="sighting", object_id=sighting_id, details=base)
    print_json(
        {
            "sighting": sighting_id,
            "encoding": encoding.decode("ascii"),
            "leaf_index": index,
            "tree_size": len(batch.ids),
            "proof": [h.hex() for h in inclusion_proof(batch.leaves, index)],
            "root": stamp_row["root"],
            "message_imprint_sha256": hashlib.sha256(bytes.fromhex(stamp_row["root"])).hexdigest(),
            "stamp": stamp_row["id"],
            "tsa_url": stamp_row["tsa_url"],
            "token_der_hex": bytes(stamp_row["token"]).hex(),
        }
    )
    out.file.flush()


@app.command("export")
def export_command(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The case id.")],
    out_path: Annotated[
        Path, typer.Option("--out", help="The package to write (.zip).", show_default=False)
    ],
    as_user: Annotated[
        str,
        typer.Option(
            "--as", help="Act as this user (their unit's cases only).", show_default=False
        ),
    ],
    recipient: Annotated[
        str,
        typer.Option("--recipient", help="Who the package is for (court, expert); audited."),
    ] = "",
    unsigned: Annotated[
        bool,
        typer.Option("--unsigned", help="Export without the unit's signature (not for court)."),
    ] = False,
) -> None:
    """Write the case's evidence package: sightings, proofs, metadata, stamps, audit; signed."""
    from atalaya.cases.cli import acting_user  # noqa: PLC0415 - the cases CLI is heavy to import

    if len(recipient) > MAX_RECIPIENT:
        raise AtalayaError(f"--recipient is at most {MAX_RECIPIENT} characters")
    key = key_from_env()
    if key is None and not unsigned:
        raise AtalayaError(
            f"no signing key configured: set {P12_ENV} (a PKCS#12 file) or {PKCS11_LIB_ENV} "
            "and its token settings; or pass --unsigned to export an unsigned package, "
            "which a court should not accept"
        )
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    done = export_case(
        engine, user, case_id, out_path, key=key, recipient=recipient, now=datetime.now(UTC)
    )
    pkg = done.package
    err.print(
        f"case {case_id}: {len(pkg.sighting_ids)} sightings, {pkg.transcripts} transcripts, "
        f"{pkg.metadata} metadata, {pkg.stamps} stamps, {pkg.audit_records} audit records, "
        f"{pkg.documents} documents -> {done.path} ({done.size} bytes, {done.members} files, "
        f"SHA-256 {done.sha256}); "
        + (f"signed with {done.signed_by}" if done.signed_by else "NOT SIGNED")
    )


@app.command("verify")
def verify_command(
    package: Annotated[
        Path, typer.Argument(help="The package (.zip) to check.", show_default=False)
    ],
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="PEM CA certificate(s) the unit's signature must chain to (and the TSA's, "
            "unless --tsa-ca is given).",
            show_default=False,
        ),
    ] = None,
    tsa_ca: CaOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a package offline, without the store; exit 1 naming whatever does not hold."""
    try:
        size = package.stat().st_size
        if size > MAX_PACKAGE_BYTES:
            raise AtalayaError(f"{package} is larger than {MAX_PACKAGE_BYTES} bytes: refused")
        data = package.read_bytes()
    except OSError as exc:
        raise AtalayaError(f"cannot read {package}: {exc.strerror or exc}") from exc
    roots = _read_ca(ca) if ca is not None else []
    tsa_roots = _read_ca(tsa_ca) if tsa_ca is not None else roots
    report = verify_package(data, ca=roots, tsa_ca=tsa_roots)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "refused": report.refused,
                "holds": [{"es": es, "en": en} for es, en in report.holds],
                "notes": [{"es": es, "en": en} for es, en in report.notes],
                "problems": [{"es": es, "en": en} for es, en in report.problems],
            }
        )
    else:
        for line in report.lines():
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.file.flush()
    if not report.ok:
        raise typer.Exit(1)
