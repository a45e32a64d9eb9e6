// The map: an offline base map drawn from the boundaries (world-atlas,
// es-atlas) or a tile server when one is configured, the selection's leads
// clustered with supercluster, and drawing an area (Geoman) that becomes
// the `area` filter.
//
// Urgency at a glance: a cluster's ring is cut into segments by score band,
// each as long as its share of the cluster's leads; the number inside is
// its leads, and the cluster's size and its badge say how many are urgent
// (score in force at least the server's `urgent_score`), never the score
// of one member. A toggle layer shades provinces by urgent leads per week;
// zoomed in (MUNICIPAL_SHADE_ZOOM), or with its own toggle, it shades
// municipalities instead, on the same scale. Their outlines are the ones
// the base map already holds (the atlas has them): the shading costs one
// count per municipality with urgent leads in /api/map's answer, and only
// those municipalities are drawn (the canvas skips what is off the view).
//
// Leads come from /api/map with the page's filters. When a filter changes,
// filters.js calls `reloadMap(query)`: the points are fetched again and the
// view (centre and zoom) is kept. A click on a province never changes a
// filter by itself: it opens a popup whose buttons do.
//
// The map opens on the peninsula, the Balearics, Ceuta and Melilla; the
// Canary Islands are a second, fixed map in a corner (the inset), drawn
// from the same selection while the main view does not already show them.
// Place names come from the atlas too (map_labels.js), unless a tile server
// draws its own.

/* global L, Supercluster, topojson */

import { boxOf, clusterSize, isCluster, itemOf, pointSize, separate } from "./map_clusters.js";
import { placeNames } from "./map_labels.js";
import { getJSON } from "./net.js";
import { t } from "./ui_text.js";

const el = document.getElementById("map");
const statusLine = document.getElementById("map-status");
const form = document.getElementById("filters");
const CLUSTER_MAX_ZOOM = 15;
// The opening view: the peninsula and the Balearics, down to Melilla.
const PENINSULA = L.latLngBounds([35.2, -9.6], [43.9, 4.4]);
const CANARIES = L.latLngBounds([27.55, -18.25], [29.5, -13.35]);
// Deeper than this the inset would hide more of the view than it helps.
const INSET_MAX_ZOOM = 7;
// Where a lead opened from the inset is shown on the main map.
const INSET_OPEN_ZOOM = 9;
// From this zoom the shading by province is by municipality: a province
// then fills the view in one colour and says little.
const MUNICIPAL_SHADE_ZOOM = 8;
// The Canaries' provinces: Las Palmas and Santa Cruz de Tenerife.
const CANARIAN = (code) => code.startsWith("35") || code.startsWith("38");
// supercluster measures its radius on a 512 px tile, Leaflet's are 256:
// this keeps the smallest icons apart; separate() handles larger ones.
const CLUSTER_RADIUS = 2 * (clusterSize(0) + 4);
const LARGEST_ICON = clusterSize(1e9) + 8;
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
map.fitBounds(PENINSULA);

function panes(target) {
  target.createPane("base");
  target.getPane("base").style.zIndex = 250;
  target.createPane("shade");
  target.getPane("shade").style.zIndex = 300;
  // Names above the shading and outlines, below the leads, and never
  // in the way of a click.
  target.createPane("labels");
  target.getPane("labels").style.zIndex = 450;
  target.getPane("labels").style.pointerEvents = "none";
  target.getPane("labels").setAttribute("aria-hidden", "true");
  if (tileUrl) {
    L.tileLayer(tileUrl, { attribution: el.dataset.tileAttribution || "", maxZoom: 19 }).addTo(target);
  }
  return {
    base: L.canvas({ pane: "base", padding: 0.5 }),
    shade: L.canvas({ pane: "shade", padding: 0.5 }),
  };
}
const renderers = panes(map);

const insetBox = document.getElementById("inset-box");
const insetEl = document.getElementById("map-inset");
const insetToggle = document.getElementById("inset-toggle");
// Fixed: it shows where the Canarian leads are; a click on one of them
// takes the main map there.
const inset = L.map(insetEl, {
  zoomControl: false,
  attributionControl: false,
  dragging: false,
  touchZoom: false,
  scrollWheelZoom: false,
  doubleClickZoom: false,
  boxZoom: false,
  keyboard: false,
  zoomSnap: 0.25,
});
inset.fitBounds(CANARIES);
const insetRenderers = panes(inset);
let insetClosed = false;
openingView([]);
// Over tiles the boundaries are outlines only.
const fill = (colour) => (tileUrl ? { fill: false } : { fillColor: colour, fillOpacity: 1 });

const leadsLayer = L.layerGroup().addTo(map);
const focusLayer = L.layerGroup().addTo(map);
const insetLeads = L.layerGroup().addTo(inset);
const insetFocus = L.layerGroup().addTo(inset);
let index = null;
// The screen boxes of the icons each map drew last, in its own pixels.
const drawn = new Map();
let spain = null;
let shadeLayers = [];
let shadeLevel = "";
// The inset's place names (map_labels.js), laid out again as it shows.
let insetNames = null;
let selection = {
  count: 0,
  placed: 0,
  points: [],
  urgent_by_province: {},
  urgent_by_municipality: {},
  weeks: 1,
};
let query = el.dataset.query || "";
let loads = 0;

function clampedBounds(target) {
  const b = target.getBounds();
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

function clusterPopup(leaves) {
  const items = [...leaves]
    .sort((a, b) => b.properties.score - a.properties.score)
    .slice(0, 50)
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

function clusterIcon(item) {
  const { count, urgent } = item;
  // Size says how many urgent leads the cluster holds; a cluster without
  // any stays small however many leads it has.
  const size = clusterSize(urgent);
  const ring = document.createElement("div");
  ring.className = "ring";
  ring.style.background = ringGradient(item.bands, count);
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

// Every lead that `item` stands for.
function leavesOf(item) {
  return item.parts.flatMap((f) =>
    f.properties.cluster ? index.getLeaves(f.properties.cluster_id, Infinity) : [f],
  );
}

// A popup on the main map; from the inset, the main map goes there first.
function showPopup(latlng, content, from, marker) {
  if (from === map && marker) {
    marker.bindPopup(content).openPopup();
    return;
  }
  map.setView(latlng, Math.max(map.getZoom(), INSET_OPEN_ZOOM), { animate: false });
  L.popup().setLatLng(latlng).setContent(content).openOn(map);
}

// A click on a cluster: the main map zooms in until it splits or, where
// its leads cannot split (one place, deepest zoom), lists them.
function openCluster(item, from, marker) {
  const zoom = Math.floor(from.getZoom());
  const leaves = leavesOf(item);
  let next;
  let centre;
  if (item.parts.length === 1) {
    const [lon, lat] = item.parts[0].geometry.coordinates;
    centre = L.latLng(lat, lon);
    next = index.getClusterExpansionZoom(item.parts[0].properties.cluster_id);
  } else {
    // Merged so as not to overlap: zoom to where its leads are.
    const bounds = L.latLngBounds(
      leaves.map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]),
    );
    centre = bounds.getCenter();
    next = bounds.getNorthEast().equals(bounds.getSouthWest())
      ? Infinity
      : Math.max(zoom + 1, Math.floor(map.getBoundsZoom(bounds, false, L.point(80, 80))));
  }
  if (next > CLUSTER_MAX_ZOOM || (from === map && zoom >= CLUSTER_MAX_ZOOM)) {
    showPopup(centre, clusterPopup(leaves), from, marker);
  } else {
    map.flyTo(centre, next);
  }
}

// The leads in `target`'s view as icons on `layer`; returns how many leads
// they stand for.
function drawLeads(target, layer) {
  layer.clearLayers();
  if (!index) return 0;
  const zoom = Math.floor(target.getZoom());
  // The inset cannot be panned: its icons are kept whole inside it.
  let frame = null;
  if (target === inset) {
    const corner = inset.containerPointToLayerPoint([0, 0]);
    const size = inset.getSize();
    frame = [corner.x, corner.y, corner.x + size.x, corner.y + size.y];
  }
  const items = separate(
    index.getClusters(clampedBounds(target), zoom).map((f) => {
      const [lon, lat] = f.geometry.coordinates;
      return itemOf(f, target.latLngToLayerPoint([lat, lon]), band, urgentScore);
    }),
    frame,
  );
  const origin = target.containerPointToLayerPoint([0, 0]);
  drawn.set(
    target,
    items.map((item) => {
      const [x0, y0, x1, y1] = boxOf(item);
      return [x0 - origin.x, y0 - origin.y, x1 - origin.x, y1 - origin.y];
    }),
  );
  let shown = 0;
  for (const item of items) {
    const latlng = target.layerPointToLatLng(L.point(item.x, item.y));
    if (isCluster(item)) {
      const { count, urgent } = item;
      const title = t("cluster_title", { count, urgent, score: urgentScore });
      const marker = L.marker(latlng, {
        icon: clusterIcon(item),
        title,
        alt: title,
        keyboard: true,
        zIndexOffset: urgent * 10,
      });
      marker.on("click", () => openCluster(item, target, marker));
      layer.addLayer(marker);
      shown += count;
    } else {
      const props = item.parts[0].properties;
      const inner = document.createElement("span");
      inner.dataset.lead = String(Number(props.id));
      const size = pointSize(props.files);
      const icon = L.divIcon({
        className: `lead-point band-${band(props.score)}`,
        html: inner,
        iconSize: [size, size],
      });
      const marker = L.marker(latlng, {
        icon,
        title: `lead ${props.id}`,
        alt: t("lead_title", { id: props.id, score: Number(props.score).toFixed(1) }),
        zIndexOffset: band(props.score) >= 3 ? 1000 : 0,
      });
      if (target === map) marker.bindPopup(leadPopup(props));
      else marker.on("click", () => showPopup(latlng, leadPopup(props), target, null));
      layer.addLayer(marker);
      shown += 1;
    }
  }
  return shown;
}

// The inset is shown while the main view neither holds the Canaries nor is
// zoomed in past a national view, and no lead of the main map is under it
// (it would hide its count); the user may also fold it away.
function insetWanted() {
  if (map.getBounds().intersects(CANARIES) || map.getZoom() > INSET_MAX_ZOOM) return false;
  insetBox.hidden = false;
  insetEl.hidden = insetClosed;
  const frame = el.getBoundingClientRect();
  const r = insetBox.getBoundingClientRect();
  const box = [r.left - frame.left, r.top - frame.top, r.right - frame.left, r.bottom - frame.top];
  return !(drawn.get(map) || []).some(
    (b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3],
  );
}

function updateInset() {
  const wanted = insetWanted();
  insetBox.hidden = !wanted;
  insetEl.hidden = insetClosed;
  insetToggle.setAttribute("aria-expanded", String(!insetClosed));
  let shown = 0;
  if (wanted && !insetClosed) {
    inset.invalidateSize(false);
    inset.fitBounds(CANARIES, { animate: false });
    if (insetNames) insetNames.place();
    shown = drawLeads(inset, insetLeads);
  } else {
    insetLeads.clearLayers();
  }
  insetEl.dataset.shown = String(shown);
}

function render() {
  statusLine.dataset.shown = String(drawLeads(map, leadsLayer));
  updateInset();
}

// Fits `bounds` on the main map; where the view will be national enough to
// show the inset, keeps `bounds` off its corner (beside it or above it,
// whichever gives the larger map).
function fitMain(bounds, maxZoom, pad) {
  const plain = { padding: [pad, pad], maxZoom, animate: false };
  if (insetClosed || bounds.intersects(CANARIES)) {
    map.fitBounds(bounds, plain);
    return;
  }
  insetBox.hidden = false;
  insetEl.hidden = false;
  const frame = el.getBoundingClientRect();
  const box = insetBox.getBoundingClientRect();
  const size = map.getSize();
  // The inset's corner in the map's pixels, with room for half the largest
  // icon: a lead at the edge of `bounds` must not slip under the inset.
  const clear = LARGEST_ICON / 2;
  const right = box.right - frame.left + clear;
  const top = box.top - frame.top - clear;
  const zoomWith = (x, y) => Math.min(maxZoom, map.getBoundsZoom(bounds, false, L.point(x, y)));
  const beside = zoomWith(right + pad, 2 * pad);
  const above = zoomWith(2 * pad, size.y - top + pad);
  const zoom = Math.max(beside, above);
  if (zoom > INSET_MAX_ZOOM) {
    map.fitBounds(bounds, plain);
    return;
  }
  // Centred on the whole map, then moved off the inset's corner as little
  // as needed: sideways or upwards, whichever fits and moves less.
  const sw = map.project(bounds.getSouthWest(), zoom);
  const ne = map.project(bounds.getNorthEast(), zoom);
  const centre = sw.add(ne).divideBy(2);
  const left = sw.x - centre.x + size.x / 2;
  const bottom = sw.y - centre.y + size.y / 2;
  if (left < right && bottom > top) {
    const fitsBeside = ne.x - sw.x + right <= size.x - pad;
    const fitsAbove = sw.y - ne.y + pad <= top;
    if (fitsBeside && (!fitsAbove || right - left <= bottom - top)) centre.x -= right - left;
    else if (fitsAbove) centre.y += bottom - top;
    else {
      map.fitBounds(bounds, {
        ...(beside >= above
          ? { paddingTopLeft: [right, pad], paddingBottomRight: [pad, pad] }
          : { paddingTopLeft: [pad, pad], paddingBottomRight: [pad, size.y - top] }),
        maxZoom,
        animate: false,
      });
      return;
    }
  }
  // Clear of the zoom and drawing buttons too, as far as the room on the
  // right allows (a phone has little).
  const buttons = el.querySelector(".leaflet-top.leaflet-left").getBoundingClientRect();
  const from = sw.x - centre.x + size.x / 2;
  const room = size.x - pad - (ne.x - centre.x + size.x / 2);
  const wanted = buttons.right - frame.left + 4 - from;
  if (wanted > 0 && room > 0) centre.x -= Math.min(wanted, room);
  map.setView(map.unproject(centre, zoom), zoom, { animate: false });
}

// The view of a shared link's places: its provinces, municipality or area.
// Canarian ones alone are fitted on the main map; beside others they are
// left to the inset.
function fitTo(layer) {
  const parts = (layer.getLayers ? layer.getLayers() : [layer])
    .map((l) => l.getBounds())
    .filter((b) => b.isValid());
  if (!parts.length) return;
  const mainland = parts.filter((b) => !CANARIES.contains(b));
  const chosen = mainland.length ? mainland : parts;
  const bounds = L.latLngBounds(chosen[0].getSouthWest(), chosen[0].getNorthEast());
  for (const b of chosen) bounds.extend(b);
  // Places on both sides: a view national enough to keep the inset.
  const both = mainland.length && mainland.length < parts.length;
  fitMain(bounds, both ? INSET_MAX_ZOOM : 12, 20);
}

// The opening view, widened to any lead outside both the peninsula and the
// Canaries (a referral abroad) so that none is out of sight.
function openingView(features) {
  const bounds = L.latLngBounds(PENINSULA.getSouthWest(), PENINSULA.getNorthEast());
  for (const f of features) {
    const [lon, lat] = f.geometry.coordinates;
    if (!PENINSULA.contains([lat, lon]) && !CANARIES.contains([lat, lon])) bounds.extend([lat, lon]);
  }
  fitMain(bounds, 12, 8);
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
  const countries = topojson.feature(world, world.objects.countries);
  L.geoJSON(countries, {
    renderer: renderers.base,
    interactive: false,
    attribution: "Boundaries: IGN (es-atlas), Natural Earth (world-atlas)",
    style: { color: "#ffffff", weight: 0.8, ...fill("#e4e0d6") },
  }).addTo(map);
  const provinces = topojson.feature(atlas, atlas.objects.provinces);
  L.geoJSON(countries, {
    renderer: insetRenderers.base,
    interactive: false,
    style: { color: "#ffffff", weight: 0.8, ...fill("#e4e0d6") },
  }).addTo(inset);
  L.geoJSON(provinces, {
    renderer: insetRenderers.base,
    interactive: false,
    filter: (f) => f.id === "35" || f.id === "38",
    style: { color: "#8c8474", weight: 1, ...fill("#f6f3ec") },
  }).addTo(inset);
  L.geoJSON(provinces, {
    renderer: renderers.base,
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
    { renderer: renderers.base, interactive: false, style: { color: "#b9b2a3", weight: 0.4 } },
  );
  const toggleMunicipalities = () => {
    if (map.getZoom() >= 8) municipalBorders.addTo(map);
    else municipalBorders.remove();
  };
  map.on("zoomend", toggleMunicipalities);
  toggleMunicipalities();
  // Tiles carry their own names.
  if (!tileUrl) {
    placeNames(map, atlas, "labels");
    // The islands named as the main map names the peninsula beside them.
    insetNames = placeNames(inset, atlas, "labels", {
      only: CANARIAN,
      zoom: () => map.getZoom(),
      framed: true,
      islands: true,
    });
  }
  return atlas;
}

function shadeOf(perWeek) {
  for (const [edge, colour] of SHADES) if (perWeek >= edge) return colour;
  return null;
}

// What the shading shows now: "province", "municipality" or "" (none).
function shadingLevel() {
  const provinces = document.getElementById("shade-provinces");
  const municipalities = document.getElementById("shade-municipalities");
  if (municipalities && municipalities.checked) return "municipality";
  if (!provinces || !provinces.checked) return "";
  return map.getZoom() >= MUNICIPAL_SHADE_ZOOM ? "municipality" : "province";
}

function drawShading() {
  for (const layer of shadeLayers) layer.remove();
  shadeLayers = [];
  shadeLevel = shadingLevel();
  el.dataset.shade = shadeLevel;
  if (!spain || !shadeLevel) {
    el.dataset.shaded = "0";
    return;
  }
  const weeks = Math.max(selection.weeks, 1 / 7);
  const fine = shadeLevel === "municipality";
  const counts = (fine ? selection.urgent_by_municipality : selection.urgent_by_province) || {};
  const object = fine ? spain.objects.municipalities : spain.objects.provinces;
  // Only the places with urgent leads: the others would not be shaded.
  const geometries = object.geometries.filter((g) => counts[g.id] > 0);
  const places = topojson.feature(spain, { type: "GeometryCollection", geometries });
  const line = fine ? 0.4 : 0.6;
  const style = (feature) => {
    const colour = shadeOf((counts[feature.id] || 0) / weeks);
    return colour
      ? { color: "#7f1d1d", weight: line, fillColor: colour, fillOpacity: 0.55 }
      : { stroke: false, fill: false };
  };
  for (const [target, renderer] of [[map, renderers.shade], [inset, insetRenderers.shade]]) {
    shadeLayers.push(L.geoJSON(places, { renderer, interactive: false, style }).addTo(target));
  }
  el.dataset.shaded = String(geometries.length);
}

const focusStyle = { color: "#1f5fa8", weight: 2.5, fill: false, interactive: false };

function highlight(params) {
  focusLayer.clearLayers();
  insetFocus.clearLayers();
  const focus = outline(params);
  // The same outlines on the inset, for a Canarian place.
  focusLayer.eachLayer((layer) =>
    insetFocus.addLayer(L.geoJSON(layer.toGeoJSON(), { style: focusStyle, interactive: false })),
  );
  return focus;
}

function outline(params) {
  if (!spain) return null;
  let focus = null;
  const outline = focusStyle;
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
    radius: CLUSTER_RADIUS,
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
  if (focus) fitTo(focus);
  else openingView(features);
  render();
  drawShading();
  announce();
}

map.on("moveend", render);
insetToggle.addEventListener("click", () => {
  insetClosed = !insetClosed;
  updateInset();
});
const shadeToggles = ["shade-provinces", "shade-municipalities"]
  .map((id) => document.getElementById(id))
  .filter(Boolean);
for (const toggle of shadeToggles) {
  toggle.addEventListener("change", () => {
    drawShading();
    document.getElementById("shade-legend").hidden = !shadeToggles.some((t) => t.checked);
  });
}
// Across MUNICIPAL_SHADE_ZOOM the shading changes level.
map.on("zoomend", () => {
  if (shadingLevel() !== shadeLevel) drawShading();
});

// For operators in the browser's console (and the end-to-end tests): what
// the map holds.
window.atalayaMap = {
  map,
  leadIds: () => selection.points.map((p) => p[0]),
  scores: () => selection.points.map((p) => p[3]),
  inset,
  shown: () => Number(statusLine.dataset.shown || 0),
  loads: () => loads,
  // The shading's level and the places it shades, by INE code.
  shading: () => ({
    level: shadeLevel,
    codes: shadeLayers.length ? shadeLayers[0].getLayers().map((l) => l.feature.id) : [],
  }),
};

main();
