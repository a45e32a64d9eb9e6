// A lead's page: its sightings per UTC day.
import { COLOURS, bar, readJSON } from "./chart-style.js";

const data = readJSON("per-day-data");
if (data && data.days.length) {
  bar(document.getElementById("per-day"), data.days, data.counts, "sightings", COLOURS.sightings);
}
