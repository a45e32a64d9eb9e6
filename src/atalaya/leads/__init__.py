"""Leads: sightings grouped into units of work, scored by named factors.

The read API other stages (the web application, cases, the command line)
use; the modules stay importable on their own.
"""

from atalaya.leads.charts import ChartData, chart_data, chart_window
from atalaya.leads.dossier import Dossier, gather, lead_sightings, local_time, sighting_record
from atalaya.leads.export import (
    CSV_HEADER,
    SIGHTING_FIELDS,
    csv_parts,
    geojson_parts,
    sighting_csv_parts,
    sighting_json_parts,
    write_csv,
    write_geojson,
    write_jsonl,
)
from atalaya.leads.history import LeadMovedError, moved
from atalaya.leads.query import (
    LeadFilter,
    iter_leads,
    latest_activity,
    lead_country,
    lead_detail,
    lead_exists,
    lead_records,
    override_history,
    override_score,
    score_in_force,
)
from atalaya.leads.scoring import check_override_score
from atalaya.leads.selection import (
    MAP_FIELDS,
    PAGE_SIZE,
    STATUSES,
    LeadRow,
    Page,
    Selected,
    Selection,
    in_area,
    lead_rows,
    map_points,
    page_of,
    row_record,
    select_leads,
)

__all__ = [
    "CSV_HEADER",
    "MAP_FIELDS",
    "PAGE_SIZE",
    "SIGHTING_FIELDS",
    "STATUSES",
    "ChartData",
    "Dossier",
    "LeadFilter",
    "LeadMovedError",
    "LeadRow",
    "Page",
    "Selected",
    "Selection",
    "chart_data",
    "chart_window",
    "check_override_score",
    "csv_parts",
    "gather",
    "geojson_parts",
    "in_area",
    "iter_leads",
    "latest_activity",
    "lead_country",
    "lead_detail",
    "lead_exists",
    "lead_records",
    "lead_rows",
    "lead_sightings",
    "local_time",
    "map_points",
    "moved",
    "override_history",
    "override_score",
    "page_of",
    "row_record",
    "score_in_force",
    "select_leads",
    "sighting_csv_parts",
    "sighting_json_parts",
    "sighting_record",
    "write_csv",
    "write_geojson",
    "write_jsonl",
]
