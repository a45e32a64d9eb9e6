// A lead's page: its sightings per UTC day, empty days included (the page
// sends every day from the first to the last; the dataset's name comes
// translated in the canvas's data-label).
import { COLOURS, bar, readJSON } from "./chart-style.js";

const data = readJSON("per-day-data");
const canvas = document.getElementById("per-day");
if (data && data.days.length && canvas) {
  bar(canvas, data.days, data.counts, canvas.dataset.label || "sightings", COLOURS.sightings);
  document.body.dataset.chart = "ready";
}
