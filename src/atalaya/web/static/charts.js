// The charts page: sightings and leads per ISO week and per province.
// Dataset names come translated from the page (data-sightings, data-leads).
// A click on a bar opens the map on that week or province (data.links, made
// by the server so the other filters stay as they are); the tables under the
// charts carry the same links for the keyboard.
import { COLOURS, bar, lighter, readJSON } from "./chart-style.js";

const data = readJSON("chart-data");
const words = document.getElementById("charts")?.dataset ?? {};
const sightings = words.sightings || "sightings";
const leads = words.leads || "leads";
const UNPLACED = "(no province)";

function follow(links) {
  return (event, elements) => {
    if (!elements.length) return;
    const target = links[elements[0].index];
    if (target) window.location.assign(target);
  };
}

function weekColours(colour) {
  // The week still in progress is drawn lighter: its count is not final.
  return data.weeks.map((w) => (w === data.partial_week ? lighter(colour) : colour));
}

function weekLabels() {
  const note = words.partial || "in progress";
  return data.weeks.map((w) => (w === data.partial_week ? [w, `(${note})`] : w));
}

if (data) {
  const provinces = data.provinces.map((p) => (p === UNPLACED ? words.unplaced || p : p));
  const weeks = weekLabels();
  const onWeek = follow(data.links.weeks);
  const onProvince = follow(data.links.provinces);
  bar(document.getElementById("sightings-week"), weeks, data.sightings_per_week, sightings,
    weekColours(COLOURS.sightings), false, onWeek);
  bar(document.getElementById("leads-week"), weeks, data.leads_per_week, leads,
    weekColours(COLOURS.leads), false, onWeek);
  bar(document.getElementById("leads-province"), provinces, data.leads_per_province, leads,
    COLOURS.leads, true, onProvince);
  bar(document.getElementById("sightings-province"), provinces, data.sightings_per_province,
    sightings, COLOURS.sightings, true, onProvince);
  document.body.dataset.charts = "ready";
}
