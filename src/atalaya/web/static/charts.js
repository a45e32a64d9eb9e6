// The charts page: sightings and leads per ISO week and per province.
// Dataset names come translated from the page (data-sightings, data-leads).
import { COLOURS, bar, readJSON } from "./chart-style.js";

const data = readJSON("chart-data");
const words = document.getElementById("charts")?.dataset ?? {};
const sightings = words.sightings || "sightings";
const leads = words.leads || "leads";
if (data) {
  bar(document.getElementById("sightings-week"), data.weeks, data.sightings_per_week, sightings, COLOURS.sightings);
  bar(document.getElementById("leads-week"), data.weeks, data.leads_per_week, leads, COLOURS.leads);
  bar(document.getElementById("leads-province"), data.provinces, data.leads_per_province, leads, COLOURS.leads, true);
  bar(document.getElementById("sightings-province"), data.provinces, data.sightings_per_province, sightings, COLOURS.sightings, true);
  document.body.dataset.charts = "ready";
}
