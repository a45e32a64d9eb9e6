// Place names on the offline base map, from the same es-atlas boundaries that
// draw it: province names from the opening zoom, provincial capitals from
// zoom 7, other large towns from zoom 9. Names and positions come from the
// atlas geometries (a point inside each province or municipality); only the
// list of which municipalities count as capitals and large towns is ours.
//
// Labels live in a pane below the leads and take no clicks, so a cluster or
// a province under a name still answers. Where two names would overlap, the
// one of lower priority is left out (a province first tries other interior
// points): the opening view stays readable on a phone.
//
// The Canaries' inset names its own places by the main map's rules: it
// passes the main map's zoom, so the islands are named as the peninsula
// beside them is, and asks for names kept whole inside its fixed frame.
// Its two provinces share their capitals' names and islands: there the
// capitals go first as soon as they are named at all, and a province may
// take another of its islands.

/* global L, topojson */

// INE codes of the municipalities that are the 50 provincial capitals, Ceuta
// and Melilla (public administrative data).
export const CAPITALS = [
  "01059", "02003", "03014", "04013", "05019", "06015", "07040", "08019", "09059", "10037",
  "11012", "12040", "13034", "14021", "15030", "16078", "17079", "18087", "19130", "20069",
  "21041", "22125", "23050", "24089", "25120", "26089", "27028", "28079", "29067", "30030",
  "31201", "32054", "33044", "34120", "35016", "36038", "37274", "38038", "39075", "40194",
  "41091", "42173", "43148", "44216", "45168", "46250", "47186", "48020", "49275", "50297",
  "51001", "52001",
];
// Towns of over about 150,000 inhabitants that are not capitals, largest first.
export const LARGE_TOWNS = [
  "36057", "33024", "08101", "03065", "08279", "08015", "30016", "11020", "08187", "28092",
  "28005", "28058", "29069", "41038", "28074", "28065", "11004", "28007", "38023", "35026",
];
// Gibraltar is in the atlas as a territory, not a province of Spain.
const NOT_PROVINCES = new Set(["54"]);
const PROVINCES_FROM = 0;
const PROVINCES_UNTIL = 10;
const CAPITALS_FROM = 7;
const TOWNS_FROM = 9;
// From here capitals go before provinces (see priority()).
const CAPITALS_FIRST = 8;
const GAP = 4; // px kept between two names

function polygonsOf(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

// Area in square degrees, scaled by the cosine of the latitude: enough to
// rank polygons and provinces by size.
function ringArea(ring) {
  let sum = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const k = Math.cos((ring[i][1] * Math.PI) / 180);
    sum += (ring[j][0] - ring[i][0]) * (ring[j][1] + ring[i][1]) * k;
  }
  return Math.abs(sum) / 2;
}

// Points inside a polygon (with its holes), best first: on a few horizontal
// lines across it, the middle of the widest run inside. Cheaper than a pole
// of inaccessibility and, unlike a centroid, always inside (a C-shaped
// province, a municipality around a bay).
export function interiorPoints(geometry, lines = 7) {
  const polygons = polygonsOf(geometry);
  if (!polygons.length) return [];
  const polygon = polygons.reduce((a, b) => (ringArea(b[0]) > ringArea(a[0]) ? b : a));
  const lats = polygon[0].map((p) => p[1]);
  const south = Math.min(...lats);
  const north = Math.max(...lats);
  const found = [];
  for (let n = 1; n <= lines; n += 1) {
    // Lines from the middle outwards, so that ties favour the centre.
    const step = Math.ceil(n / 2) * (n % 2 ? 1 : -1);
    const lat = south + (north - south) * (0.5 + step / (lines + 3));
    const crossings = [];
    for (const ring of polygon) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
        const [x1, y1] = ring[j];
        const [x2, y2] = ring[i];
        if ((y1 > lat) !== (y2 > lat)) crossings.push(x1 + ((lat - y1) / (y2 - y1)) * (x2 - x1));
      }
    }
    crossings.sort((a, b) => a - b);
    let best = null;
    for (let i = 0; i + 1 < crossings.length; i += 2) {
      const width = crossings[i + 1] - crossings[i];
      if (!best || width > best.width) best = { width, lon: (crossings[i] + crossings[i + 1]) / 2 };
    }
    if (best) found.push({ lat, lon: best.lon, width: best.width * Math.cos((lat * Math.PI) / 180) });
  }
  found.sort((a, b) => b.width - a.width);
  return found.map((p) => [p.lat, p.lon]);
}

function labelsOf(atlas, only, islands) {
  const out = [];
  const provinces = topojson.feature(atlas, atlas.objects.provinces).features;
  for (const f of provinces) {
    if (NOT_PROVINCES.has(f.id) || !only(f.id)) continue;
    const polygons = polygonsOf(f.geometry);
    const size = polygons.reduce((s, p) => s + ringArea(p[0]), 0);
    const at = interiorPoints(f.geometry).slice(0, 3);
    if (islands) {
      // Then one point on each other island, larger ones first.
      const others = polygons
        .map((p) => [ringArea(p[0]), p])
        .sort((a, b) => b[0] - a[0])
        .slice(1, 6);
      for (const [, p] of others) at.push(...interiorPoints({ type: "Polygon", coordinates: p }, 3).slice(0, 1));
    }
    out.push({
      kind: "province",
      code: f.id,
      name: f.properties.name,
      at,
      rank: -size, // larger provinces first
    });
  }
  const wanted = new Map([
    ...CAPITALS.map((code, i) => [code, ["capital", i]]),
    ...LARGE_TOWNS.map((code, i) => [code, ["town", i]]),
  ]);
  const geometries = atlas.objects.municipalities.geometries.filter(
    (g) => wanted.has(g.id) && only(g.id),
  );
  for (const g of geometries) {
    const f = topojson.feature(atlas, g);
    const [kind, rank] = wanted.get(g.id);
    out.push({ kind, code: g.id, name: f.properties.name, at: interiorPoints(f.geometry).slice(0, 1), rank });
  }
  return out.filter((l) => l.at.length);
}

function shownAt(label, zoom) {
  if (label.kind === "province") return zoom >= PROVINCES_FROM && zoom <= PROVINCES_UNTIL;
  if (label.kind === "capital") return zoom >= CAPITALS_FROM;
  return zoom >= TOWNS_FROM;
}

// Which names go first at this zoom: provinces while they are what the
// view is about, capitals once they are (a capital is what one zooms to).
function priority(label, zoom, capitalsFirst = CAPITALS_FIRST) {
  const order =
    zoom >= capitalsFirst ? { capital: 0, province: 1, town: 2 } : { province: 0, capital: 1, town: 2 };
  return order[label.kind] * 1e9 + label.rank;
}

// The place names of `atlas` on `map`, in `pane`. Options: `only(code)`
// keeps the provinces and municipalities named (all by default), `zoom()`
// the zoom whose rules apply (the map's own by default), `framed` keeps
// every name whole inside the map's box, moved in if it would cross an edge
// (for a map that cannot be panned), and `islands` puts capitals first
// from the zoom that names them and lets a province's name move to its
// other islands. Returns the layer group, with `place()` to lay the names
// out again.
export function placeNames(map, atlas, pane, options = {}) {
  const only = options.only || (() => true);
  const rulesZoom = options.zoom || (() => map.getZoom());
  const layer = L.layerGroup().addTo(map);
  const labels = labelsOf(atlas, only, Boolean(options.islands));
  const capitalsFirst = options.islands ? CAPITALS_FROM : CAPITALS_FIRST;

  // Sizes are measured in the pane, with the page's own fonts (and the
  // pane's own rules: the inset's names are smaller); a map hidden when
  // they were asked for is measured again once it shows.
  const measure = () => {
    const ruler = document.createElement("div");
    ruler.style.visibility = "hidden";
    ruler.style.position = "absolute";
    // Its own width, not the pane's (none): a name that may wrap wraps at
    // its max-width only.
    ruler.style.width = "max-content";
    map.getPane(pane).appendChild(ruler);
    for (const label of labels) {
      ruler.className = `place-name ${label.kind}`;
      ruler.textContent = label.name;
      const r = ruler.getBoundingClientRect();
      label.size = [Math.ceil(r.width), Math.ceil(r.height)];
    }
    ruler.remove();
  };

  const place = () => {
    layer.clearLayers();
    const box0 = map.getSize();
    if (!box0.x || !box0.y || !map.getContainer().offsetParent) return;
    if (labels.some((l) => !l.size || !l.size[0])) measure();
    const zoom = rulesZoom();
    const origin = map.containerPointToLayerPoint([0, 0]);
    const taken = [];
    const free = (box) =>
      !taken.some((t) => box[0] < t[2] + GAP && t[0] < box[2] + GAP && box[1] < t[3] + GAP && t[1] < box[3] + GAP);
    // Moved inside the frame, or null where it cannot fit.
    const inFrame = (box) => {
      if (!options.framed) return box;
      const [w, h] = [box[2] - box[0], box[3] - box[1]];
      if (w > box0.x || h > box0.y) return null;
      const dx = Math.max(0, origin.x - box[0]) - Math.max(0, box[2] - (origin.x + box0.x));
      const dy = Math.max(0, origin.y - box[1]) - Math.max(0, box[3] - (origin.y + box0.y));
      return [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy];
    };
    const candidates = labels.filter((l) => shownAt(l, zoom));
    candidates.sort((a, b) => priority(a, zoom, capitalsFirst) - priority(b, zoom, capitalsFirst));
    for (const label of candidates) {
      const [w, h] = label.size;
      for (const at of label.at) {
        const p = map.latLngToLayerPoint(at);
        const box = inFrame([p.x - w / 2, p.y - h / 2, p.x + w / 2, p.y + h / 2]);
        if (!box || !free(box)) continue;
        taken.push(box);
        const text = document.createElement("span");
        text.textContent = label.name;
        text.dataset.place = label.code;
        const centre = L.point((box[0] + box[2]) / 2, (box[1] + box[3]) / 2);
        layer.addLayer(
          L.marker(map.layerPointToLatLng(centre), {
            pane,
            interactive: false,
            keyboard: false,
            icon: L.divIcon({ className: `place-name ${label.kind}`, html: text, iconSize: label.size }),
          }),
        );
        break;
      }
    }
  };
  map.on("zoomend", place);
  place();
  layer.place = place;
  return layer;
}
