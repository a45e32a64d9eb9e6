"""Leads: sightings grouped into units of work, scored by named factors.

The read API other stages (the web application, cases, the command line)
use; the modules stay importable on their own.
"""

from atalaya.leads.export import (
    CSV_HEADER,
    csv_parts,
    geojson_parts,
    write_csv,
    write_geojson,
    write_jsonl,
)
from atalaya.leads.history import LeadMovedError, moved
from atalaya.leads.query import (
    LeadFilter,
    iter_leads,
    lead_detail,
    lead_records,
    override_history,
    override_score,
    score_in_force,
)
from atalaya.leads.scoring import check_override_score

__all__ = [
    "CSV_HEADER",
    "LeadFilter",
    "LeadMovedError",
    "check_override_score",
    "csv_parts",
    "geojson_parts",
    "iter_leads",
    "lead_detail",
    "lead_records",
    "moved",
    "override_history",
    "override_score",
    "score_in_force",
    "write_csv",
    "write_geojson",
    "write_jsonl",
]
