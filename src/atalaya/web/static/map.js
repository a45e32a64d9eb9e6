// The map: an offline base map drawn from the boundaries (world-atlas,
// es-atlas) or a tile server when one is configured, the selection's leads
// clustered with supercluster (colour by score, size by known files), and
// drawing an area (Geoman) that becomes the `area` filter.
//
// Leads come from /api/map with the page's own filters: the list beside the
// map is the same selection, from the same query on the server.

/* global L, Supercluster, topojson */

const el = document.getElementById("map");
const statusLine = document.getElementById("map-status");
const form = document.getElementById("filters");
const BANDS = [20, 40, 60, 80];
const CLUSTER_MAX_ZOOM = 15;
const SPAIN_VIEW = [[27.4, -18.4], [44.0, 4.6]];

const band = (score) => BANDS.filter((edge) => score >= edge).length;

function say(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

async function loadJSON(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) {
    throw new Error(`${url.split("?")[0]} answered ${response.status}`);
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
const baseRenderer = L.canvas({ pane: "base", padding: 0.5 });
if (tileUrl) {
  L.tileLayer(tileUrl, { attribution: el.dataset.tileAttribution || "", maxZoom: 19 }).addTo(map);
}
// Over tiles the boundaries are outlines only.
const fill = (colour) => (tileUrl ? { fill: false } : { fillColor: colour, fillOpacity: 1 });

const leadsLayer = L.layerGroup().addTo(map);
let index = null;
let selection = { count: 0, placed: 0, points: [] };

function clampedBounds() {
  const b = map.getBounds();
  const west = b.getWest();
  const east = b.getEast();
  if (east - west >= 360) return [-180, -85, 180, 85];
  return [Math.max(-180, west), Math.max(-85, b.getSouth()), Math.min(180, east), Math.min(85, b.getNorth())];
}

function leadPopup(props) {
  const back = encodeURIComponent(el.dataset.back || "");
  const id = Number(props.id);
  return `<a href="/leads/${id}?back=${back}">Lead #${id}</a><br>score ${Number(props.score).toFixed(1)} · ${Number(props.files)} known files`;
}

function clusterPopup(clusterId) {
  const leaves = index.getLeaves(clusterId, 50);
  const back = encodeURIComponent(el.dataset.back || "");
  const items = leaves
    .sort((a, b) => b.properties.score - a.properties.score)
    .map((f) => `<li><a href="/leads/${Number(f.properties.id)}?back=${back}">#${Number(f.properties.id)}</a> score ${Number(f.properties.score).toFixed(1)}</li>`)
    .join("");
  return `<ul class="leaves">${items}</ul>`;
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
      const size = 26 + Math.min(34, Math.round(Math.log2(count) * 5));
      const icon = L.divIcon({
        className: `lead-cluster band-${band(props.score)}`,
        html: `<span data-count="${count}">${count}</span>`,
        iconSize: [size, size],
      });
      const marker = L.marker([lat, lon], { icon, title: `${count} leads` });
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
      const icon = L.divIcon({
        className: `lead-point band-${band(props.score)}`,
        html: `<span data-lead="${Number(props.id)}"></span>`,
        iconSize: [size, size],
      });
      leadsLayer.addLayer(
        L.marker([lat, lon], { icon, title: `lead ${props.id}` }).bindPopup(leadPopup(props)),
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

async function drawBase() {
  const [world, spain] = await Promise.all([
    loadJSON(el.dataset.world),
    loadJSON(el.dataset.spain),
  ]);
  L.geoJSON(topojson.feature(world, world.objects.countries), {
    renderer: baseRenderer,
    interactive: false,
    attribution: "Boundaries: IGN (es-atlas), Natural Earth (world-atlas)",
    style: { color: "#ffffff", weight: 0.8, ...fill("#e4e0d6") },
  }).addTo(map);
  const provinces = topojson.feature(spain, spain.objects.provinces);
  L.geoJSON(provinces, {
    renderer: baseRenderer,
    style: { color: "#8c8474", weight: 1, ...fill("#f6f3ec") },
    onEachFeature: (feature, layer) => {
      layer.on("click", () => {
        if (map.pm.globalDrawModeEnabled()) return;
        const select = document.getElementById("province");
        if (select && select.value !== feature.id) {
          select.value = feature.id;
          select.dispatchEvent(new Event("change"));
        }
      });
    },
  }).addTo(map);
  const municipalBorders = L.geoJSON(
    topojson.mesh(spain, spain.objects.municipalities, (a, b) => a !== b),
    { renderer: baseRenderer, interactive: false, style: { color: "#b9b2a3", weight: 0.4 } },
  );
  const toggleMunicipalities = () => {
    if (map.getZoom() >= 8) municipalBorders.addTo(map);
    else municipalBorders.remove();
  };
  map.on("zoomend", toggleMunicipalities);
  toggleMunicipalities();
  return spain;
}

function highlight(spain) {
  const province = el.dataset.province;
  const municipality = el.dataset.municipality;
  const area = parseArea(el.dataset.area);
  let focus = null;
  const outline = { color: "#1f5fa8", weight: 2.5, fill: false, interactive: false };
  if (province) {
    const feature = spain.objects.provinces.geometries.find((g) => g.id === province);
    if (feature) focus = L.geoJSON(topojson.feature(spain, feature), { style: outline }).addTo(map);
  }
  if (municipality) {
    const feature = spain.objects.municipalities.geometries.find((g) => g.id === municipality);
    if (feature) focus = L.geoJSON(topojson.feature(spain, feature), { style: outline }).addTo(map);
  }
  if (area) {
    focus = L.polygon(area, { ...outline, dashArray: "6 4", pmIgnore: true }).addTo(map);
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
    document.getElementById("area").value = area;
    say("Loading the drawn area…", "loading");
    form.requestSubmit();
  });
}

async function main() {
  enableDrawing();
  let spain = null;
  try {
    spain = await drawBase();
  } catch (error) {
    say(`The base map could not be drawn: ${error.message}`, "error");
  }
  const focus = spain ? highlight(spain) : null;
  try {
    selection = await loadJSON(el.dataset.api);
  } catch (error) {
    say(`The leads could not be loaded: ${error.message}`, "error");
    return;
  }
  const features = selection.points.map(([id, lat, lon, score, files]) => ({
    type: "Feature",
    properties: { id, score, files },
    geometry: { type: "Point", coordinates: [lon, lat] },
  }));
  index = new Supercluster({
    radius: 50,
    maxZoom: CLUSTER_MAX_ZOOM,
    map: (p) => ({ score: p.score, files: p.files }),
    reduce: (acc, p) => {
      acc.score = Math.max(acc.score, p.score);
      acc.files += p.files;
    },
  });
  index.load(features);
  if (focus) {
    fitTo(focus);
  } else if (features.length) {
    fitTo(L.geoJSON({ type: "FeatureCollection", features }));
  }
  map.on("moveend", render);
  render();
  const unplaced = selection.count - selection.placed;
  statusLine.dataset.count = String(selection.count);
  statusLine.dataset.placed = String(selection.placed);
  say(
    `${selection.count} leads in this selection, ${selection.placed} on the map` +
      (unplaced ? ` (${unplaced} without a place)` : ""),
    "ready",
  );
}

// For operators in the browser's console (and the end-to-end tests): what
// the map holds.
window.atalayaMap = {
  map,
  leadIds: () => selection.points.map((p) => p[0]),
  shown: () => Number(statusLine.dataset.shown || 0),
};

main();
