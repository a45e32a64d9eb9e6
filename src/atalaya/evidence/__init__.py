"""Evidence a third party can check: RFC 3161 time stamps (later: proof transcripts, packages).

API (importable from `atalaya.evidence`):
- `stamp_sightings(engine, stamper, tsa_url, *, batch_size=4096, max_batches=None,
  on_batch=None) -> [StoredStamp]`: stamps every sighting above the last one
  stamped, in batches sorted by id (merkle root over their canonical
  encoding, `atalaya.evidence.stamping`).
- `stamp_audit_head(engine, stamper, tsa_url) -> StoredStamp | None`: stamps
  the audit chain's head (the head record's hash).
- `tsa_stamper(url, roots=(), timeout=20.0) -> Stamper`: a stamper that
  asks the TSA at `url` over HTTP (bounded reply, deadline, typed errors:
  `TsaError` and its subclasses in `atalaya.evidence.tsp`).
- `verify_stamps(engine, roots) -> StampCheck(ok, stamps, sightings,
  audit_heads, problems, altered, inserted)`: every stored token checked
  offline against the TSA's CA certificates and the rows now stored.
- `encode_row(row) -> bytes`, `batch_of(rows) -> Batch`; `merkle.root_of`,
  `merkle.inclusion_proof`, `merkle.verify_inclusion` (standard library
  only, for verifiers).
"""

from atalaya.evidence.stamping import Batch, EncodingError, batch_of, encode_row
from atalaya.evidence.stamps import (
    AUDIT_HEAD,
    SIGHTINGS,
    TSA_URL_ENV,
    StampCheck,
    Stamper,
    StoredStamp,
    stamp_audit_head,
    stamp_sightings,
    tsa_stamper,
    verify_stamps,
)
from atalaya.evidence.tsp import TsaError

__all__ = [
    "AUDIT_HEAD",
    "SIGHTINGS",
    "TSA_URL_ENV",
    "Batch",
    "EncodingError",
    "StampCheck",
    "Stamper",
    "StoredStamp",
    "TsaError",
    "batch_of",
    "encode_row",
    "stamp_audit_head",
    "stamp_sightings",
    "tsa_stamper",
    "verify_stamps",
]
