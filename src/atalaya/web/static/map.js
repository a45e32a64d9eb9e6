// The map: an offline base map drawn from the boundaries (world-atlas,
// es-atlas) or a tile server when one is configured, the selection's leads
// clustered with supercluster, and drawing an area (Geoman) that becomes
// the `area` filter.
//
// Urgency at a glance: a cluster's ring is cut into segments by score band,
// each as long as its share of the cluster's leads; the number inside is
// its leads, and the cluster's size and its badge say how many are urgent
// (score in force at least the server's `urgent_score`), never the score
// of one member. A toggle layer shades provinces by urgent leads per week.
//
// Leads come from /api/map with the page's filters. When a filter changes,
// filters.js calls `reloadMap(query)`: the points are fetched again and the
// view (centre and zoom) is kept. A click on a province never changes a
// filter by itself: it opens a popup whose buttons do.

/* global L, Supercluster, topojson */

import { getJSON } from "./net.js";
import { t } from "./ui_text.js";

const el = document.getElementById("map");
const statusLine = document.getElementById("map-status");
const form = document.getElementById("filters");
const CLUSTER_MAX_ZOOM = 15;
const SPAIN_VIEW = [[27.4, -18.4], [44.0, 4.6]];
const BAND_COLOURS = ["#8fb39a", "#d8c55a", "#e39a3b", "#d4602f", "#a3202a"];
// Urgent leads per week: the lower edge of each shade.
const SHADES = [
  [5, "#7f1d1d"],
  [2, "#b91c1c"],
  [1, "#ef4444"],
  [0.5, "#fca5a5"],
  [0.0001, "#fee2e2"],
];

let bands = [20, 40, 60, 80];
let urgentScore = 60;
const band = (score) => bands.filter((edge) => score >= edge).length;

function say(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

async function loadJSON(url) {
  const response = await getJSON(url);
  if (!response.ok) {
    let message = `${url.split("?")[0]} answered ${response.status}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) {
      // not JSON: the status says enough
    }
    throw new Error(message);
  }
  return response.json();
}

function parseArea(text) {
  if (!text) return null;
  return text.split(",").map((pair) => {
    const [lon, lat] = pair.trim().split(/\s+/).map(Number);
    return [lat, lon];
  });
}

const tileUrl = el.dataset.tileUrl;
const map = L.map(el, { zoomSnap: 0.5, minZoom: 2, maxZoom: 18 });
map.attributionControl.setPrefix(false);
map.fitBounds(SPAIN_VIEW);
map.createPane("base");
map.getPane("base").style.zIndex = 250;
map.createPane("shade");
map.getPane("shade").style.zIndex = 300;
const baseRenderer = L.canvas({ pane: "base", padding: 0.5 });
const shadeRenderer = L.canvas({ pane: "shade", padding: 0.5 });
if (tileUrl) {
  L.tileLayer(tileUrl, { attribution: el.dataset.tileAttribution || "", maxZoom: 19 }).addTo(map);
}
// Over tiles the boundaries are outlines only.
const fill = (colour) => (tileUrl ? { fill: false } : { fillColor: colour, fillOpacity: 1 });

const leadsLayer = L.layerGroup().addTo(map);
const focusLayer = L.layerGroup().addTo(map);
let index = null;
let spain = null;
let shadeLayer = null;
let selection = { count: 0, placed: 0, points: [], urgent_by_province: {}, weeks: 1 };
let query = el.dataset.query || "";
let loads = 0;

function clampedBounds() {
  const b = map.getBounds();
  const west = b.getWest();
  const east = b.getEast();
  if (east - west >= 360) return [-180, -85, 180, 85];
  return [Math.max(-180, west), Math.max(-85, b.getSouth()), Math.min(180, east), Math.min(85, b.getNorth())];
}

function leadLink(id) {
  return `/leads/${Number(id)}?back=${encodeURIComponent(query)}`;
}

function leadPopup(props) {
  const id = Number(props.id);
  const score = Number(props.score).toFixed(1);
  const files = Number(props.files);
  return `<a href="${leadLink(id)}">${t("lead_link", { id })}</a><br>${t("lead_popup_score", { score, files })}`;
}

function clusterPopup(clusterId) {
  const leaves = index.getLeaves(clusterId, 50);
  const items = leaves
    .sort((a, b) => b.properties.score - a.properties.score)
    .map((f) => `<li><a href="${leadLink(f.properties.id)}">#${Number(f.properties.id)}</a> ${t("score", { score: Number(f.properties.score).toFixed(1) })}</li>`)
    .join("");
  return `<ul class="leaves">${items}</ul>`;
}

function ringGradient(counts, total) {
  // Highest band first, clockwise from the top.
  let at = 0;
  const stops = [];
  for (let b = counts.length - 1; b >= 0; b -= 1) {
    if (!counts[b]) continue;
    const end = at + (counts[b] / total) * 360;
    stops.push(`${BAND_COLOURS[b]} ${at}deg ${end}deg`);
    at = end;
  }
  return `conic-gradient(${stops.join(", ")})`;
}

function clusterIcon(props) {
  const count = props.point_count;
  const counts = [props.b0, props.b1, props.b2, props.b3, props.b4];
  const urgent = props.urgent;
  // Size says how many urgent leads the cluster holds; a cluster without
  // any stays small however many leads it has.
  const size = urgent ? 34 + Math.min(30, Math.round(Math.log2(1 + urgent) * 7)) : 28;
  const ring = document.createElement("div");
  ring.className = "ring";
  ring.style.background = ringGradient(counts, count);
  const core = document.createElement("span");
  core.className = "core";
  core.dataset.count = String(count);
  core.dataset.urgent = String(urgent);
  core.textContent = String(count);
  ring.appendChild(core);
  if (urgent) {
    const badge = document.createElement("span");
    badge.className = "urgent-badge";
    badge.textContent = String(urgent);
    ring.appendChild(badge);
  }
  return L.divIcon({
    className: `lead-cluster${urgent ? " has-urgent" : ""}`,
    html: ring,
    iconSize: [size, size],
  });
}

function render() {
  leadsLayer.clearLayers();
  if (!index) return;
  const zoom = Math.floor(map.getZoom());
  let shown = 0;
  for (const feature of index.getClusters(clampedBounds(), zoom)) {
    const [lon, lat] = feature.geometry.coordinates;
    const props = feature.properties;
    if (props.cluster) {
      const count = props.point_count;
      const title = t("cluster_title", { count, urgent: props.urgent, score: urgentScore });
      const marker = L.marker([lat, lon], {
        icon: clusterIcon(props),
        title,
        alt: title,
        keyboard: true,
        zIndexOffset: props.urgent * 10,
      });
      const clusterId = props.cluster_id;
      marker.on("click", () => {
        const next = index.getClusterExpansionZoom(clusterId);
        if (next > CLUSTER_MAX_ZOOM || zoom >= CLUSTER_MAX_ZOOM) {
          // Leads at one place never split: list them instead.
          marker.bindPopup(clusterPopup(clusterId)).openPopup();
        } else {
          map.flyTo([lat, lon], next);
        }
      });
      leadsLayer.addLayer(marker);
      shown += count;
    } else {
      const size = 12 + Math.min(20, Math.round(Math.log2(1 + props.files) * 4));
      const inner = document.createElement("span");
      inner.dataset.lead = String(Number(props.id));
      const icon = L.divIcon({
        className: `lead-point band-${band(props.score)}`,
        html: inner,
        iconSize: [size, size],
      });
      leadsLayer.addLayer(
        L.marker([lat, lon], {
          icon,
          title: `lead ${props.id}`,
          alt: t("lead_title", { id: props.id, score: Number(props.score).toFixed(1) }),
          zIndexOffset: band(props.score) >= 3 ? 1000 : 0,
        }).bindPopup(leadPopup(props)),
      );
      shown += 1;
    }
  }
  statusLine.dataset.shown = String(shown);
}

function fitTo(layer) {
  const bounds = layer.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 12, animate: false });
}

function chosenProvinces() {
  const select = document.getElementById("province");
  return select ? [...select.selectedOptions].map((o) => o.value).filter(Boolean) : [];
}

function provincePopup(feature) {
  const code = feature.id;
  const name = feature.properties.name;
  const urgent = selection.urgent_by_province[code] || 0;
  const perWeek = urgent / Math.max(selection.weeks, 1 / 7);
  const chosen = chosenProvinces().includes(code);
  const box = document.createElement("div");
  box.className = "province-popup";
  const title = document.createElement("strong");
  title.textContent = name;
  box.appendChild(title);
  const line = document.createElement("p");
  line.textContent = t("province_urgent", { urgent, per_week: perWeek.toFixed(1) });
  box.appendChild(line);
  const button = (id, text, action) => {
    const b = document.createElement("button");
    b.type = "button";
    b.id = id;
    b.textContent = text;
    b.addEventListener("click", () => {
      map.closePopup();
      action();
    });
    box.appendChild(b);
  };
  const select = document.getElementById("province");
  const setChosen = (codes) => {
    for (const option of select.options) option.selected = codes.includes(option.value);
    select.dispatchEvent(new Event("change", { bubbles: true }));
  };
  if (chosen) {
    button("province-remove", t("remove_province"), () =>
      setChosen(chosenProvinces().filter((c) => c !== code)),
    );
  } else {
    button("province-add", t("add_province"), () => setChosen([...chosenProvinces(), code]));
    button("province-only", t("only_province"), () => setChosen([code]));
  }
  return box;
}

async function drawBase() {
  const [world, atlas] = await Promise.all([
    loadJSON(el.dataset.world),
    loadJSON(el.dataset.spain),
  ]);
  L.geoJSON(topojson.feature(world, world.objects.countries), {
    renderer: baseRenderer,
    interactive: false,
    attribution: "Boundaries: IGN (es-atlas), Natural Earth (world-atlas)",
    style: { color: "#ffffff", weight: 0.8, ...fill("#e4e0d6") },
  }).addTo(map);
  const provinces = topojson.feature(atlas, atlas.objects.provinces);
  L.geoJSON(provinces, {
    renderer: baseRenderer,
    style: { color: "#8c8474", weight: 1, ...fill("#f6f3ec") },
    onEachFeature: (feature, layer) => {
      layer.on("click", (event) => {
        if (map.pm.globalDrawModeEnabled()) return;
        L.popup().setLatLng(event.latlng).setContent(provincePopup(feature)).openOn(map);
      });
    },
  }).addTo(map);
  const municipalBorders = L.geoJSON(
    topojson.mesh(atlas, atlas.objects.municipalities, (a, b) => a !== b),
    { renderer: baseRenderer, interactive: false, style: { color: "#b9b2a3", weight: 0.4 } },
  );
  const toggleMunicipalities = () => {
    if (map.getZoom() >= 8) municipalBorders.addTo(map);
    else municipalBorders.remove();
  };
  map.on("zoomend", toggleMunicipalities);
  toggleMunicipalities();
  return atlas;
}

function shadeOf(perWeek) {
  for (const [edge, colour] of SHADES) if (perWeek >= edge) return colour;
  return null;
}

function drawShading() {
  if (shadeLayer) shadeLayer.remove();
  shadeLayer = null;
  const toggle = document.getElementById("shade-provinces");
  if (!spain || !toggle || !toggle.checked) return;
  const weeks = Math.max(selection.weeks, 1 / 7);
  shadeLayer = L.geoJSON(topojson.feature(spain, spain.objects.provinces), {
    renderer: shadeRenderer,
    interactive: false,
    style: (feature) => {
      const urgent = selection.urgent_by_province[feature.id] || 0;
      const colour = shadeOf(urgent / weeks);
      return colour
        ? { color: "#7f1d1d", weight: 0.6, fillColor: colour, fillOpacity: 0.55 }
        : { stroke: false, fill: false };
    },
  }).addTo(map);
  const shaded = Object.values(selection.urgent_by_province).filter((n) => n > 0).length;
  toggle.dataset.shaded = String(shaded);
}

function highlight(params) {
  focusLayer.clearLayers();
  if (!spain) return null;
  let focus = null;
  const outline = { color: "#1f5fa8", weight: 2.5, fill: false, interactive: false };
  const provinces = params.getAll("province").flatMap((v) => v.split(","));
  const geometries = spain.objects.provinces.geometries.filter((g) => provinces.includes(g.id));
  if (geometries.length) {
    focus = L.geoJSON(
      topojson.feature(spain, { type: "GeometryCollection", geometries }),
      { style: outline },
    );
    focusLayer.addLayer(focus);
  }
  const municipality = params.get("municipality");
  if (municipality) {
    const feature = spain.objects.municipalities.geometries.find((g) => g.id === municipality);
    if (feature) {
      focus = L.geoJSON(topojson.feature(spain, feature), { style: outline });
      focusLayer.addLayer(focus);
    }
  }
  const area = parseArea(params.get("area"));
  if (area) {
    focus = L.polygon(area, { ...outline, dashArray: "6 4", pmIgnore: true });
    focusLayer.addLayer(focus);
  }
  return focus;
}

function enableDrawing() {
  map.pm.addControls({
    position: "topleft",
    drawMarker: false,
    drawCircleMarker: false,
    drawPolyline: false,
    drawCircle: false,
    drawText: false,
    drawRectangle: true,
    drawPolygon: true,
    editMode: false,
    dragMode: false,
    cutPolygon: false,
    removalMode: false,
    rotateMode: false,
  });
  map.on("pm:create", (event) => {
    const ring = event.layer.getLatLngs()[0];
    const area = ring.map((ll) => `${ll.lng.toFixed(6)} ${ll.lat.toFixed(6)}`).join(",");
    // The drawing becomes the outline that highlight() draws.
    event.layer.remove();
    document.getElementById("area").value = area;
    form.dispatchEvent(new CustomEvent("filters:change"));
  });
}

function indexPoints() {
  const features = selection.points.map(([id, lat, lon, score, files]) => ({
    type: "Feature",
    properties: { id, score, files },
    geometry: { type: "Point", coordinates: [lon, lat] },
  }));
  index = new Supercluster({
    radius: 50,
    maxZoom: CLUSTER_MAX_ZOOM,
    map: (p) => {
      const b = band(p.score);
      return {
        files: p.files,
        urgent: p.score >= urgentScore ? 1 : 0,
        b0: b === 0 ? 1 : 0,
        b1: b === 1 ? 1 : 0,
        b2: b === 2 ? 1 : 0,
        b3: b === 3 ? 1 : 0,
        b4: b === 4 ? 1 : 0,
      };
    },
    reduce: (acc, p) => {
      acc.files += p.files;
      acc.urgent += p.urgent;
      acc.b0 += p.b0;
      acc.b1 += p.b1;
      acc.b2 += p.b2;
      acc.b3 += p.b3;
      acc.b4 += p.b4;
    },
  });
  index.load(features);
  return features;
}

function announce() {
  const unplaced = selection.count - selection.placed;
  const urgent = selection.points.filter((p) => p[3] >= urgentScore).length;
  statusLine.dataset.count = String(selection.count);
  statusLine.dataset.placed = String(selection.placed);
  statusLine.dataset.urgent = String(urgent);
  statusLine.dataset.loads = String(loads);
  say(
    t("selection", { count: selection.count, placed: selection.placed, urgent }) +
      (unplaced ? t("unplaced", { unplaced }) : ""),
    "ready",
  );
}

async function fetchSelection(q) {
  const answer = await loadJSON(`/api/map?${q}`);
  if (answer.bands) bands = answer.bands;
  if (typeof answer.urgent_score === "number") urgentScore = answer.urgent_score;
  loads += 1;
  return answer;
}

// Called by filters.js when a filter changes: new points, same view.
let pending = 0;
export async function reloadMap(q) {
  query = q;
  const mine = ++pending;
  say(t("loading"), "loading");
  let answer;
  try {
    answer = await fetchSelection(q);
  } catch (error) {
    if (mine === pending) say(t("leads_failed", { error: error.message }), "error");
    return;
  }
  if (mine !== pending) return; // a later change overtook this one
  selection = answer;
  highlight(new URLSearchParams(q));
  indexPoints();
  render();
  drawShading();
  announce();
}

async function main() {
  enableDrawing();
  try {
    spain = await drawBase();
  } catch (error) {
    say(t("base_failed", { error: error.message }), "error");
  }
  const focus = highlight(new URLSearchParams(query));
  const mine = ++pending;
  let answer;
  try {
    answer = await fetchSelection(query);
  } catch (error) {
    say(t("leads_failed", { error: error.message }), "error");
    return;
  }
  if (mine !== pending) return;
  selection = answer;
  const features = indexPoints();
  if (focus) {
    fitTo(focus);
  } else if (features.length) {
    fitTo(L.geoJSON({ type: "FeatureCollection", features }));
  }
  render();
  drawShading();
  announce();
}

map.on("moveend", render);
const shadeToggle = document.getElementById("shade-provinces");
if (shadeToggle) {
  shadeToggle.addEventListener("change", () => {
    drawShading();
    document.getElementById("shade-legend").hidden = !shadeToggle.checked;
  });
}

// For operators in the browser's console (and the end-to-end tests): what
// the map holds.
window.atalayaMap = {
  map,
  leadIds: () => selection.points.map((p) => p[0]),
  scores: () => selection.points.map((p) => p[3]),
  shown: () => Number(statusLine.dataset.shown || 0),
  loads: () => loads,
};

main();
