// What the map draws for the leads in view: supercluster's clusters and
// points, then merged wherever two icons would overlap on the screen.
//
// supercluster groups points within a fixed radius of a seed, but an icon's
// size grows with its urgent leads, and two clusters' centres can end up
// closer than the radius: a large icon could hide its neighbour's count.
// `separate` merges every pair whose boxes (badge included) would touch
// until none do; counts are summed, so what the icons say adds up to the
// leads in view, exactly.

export const BANDS = 5;
const GAP = 3; // px between two icons' boxes

// An icon's side in px: a cluster's grows with its urgent leads, a single
// lead's with its known files.
export function clusterSize(urgent) {
  return urgent ? 34 + Math.min(30, Math.round(Math.log2(1 + urgent) * 7)) : 28;
}

export function pointSize(files) {
  return 12 + Math.min(20, Math.round(Math.log2(1 + files) * 4));
}

// Width of the urgent badge (map.css: min-width 16px, 4px padding each side).
function badgeWidth(urgent) {
  return Math.max(16, 8 + 7 * String(urgent).length);
}

export function isCluster(item) {
  return item.count > 1 || item.parts.length > 1 || item.parts[0].properties.cluster;
}

// The screen box [left, top, right, bottom] of `item`'s icon centred on its
// x, y: the circle, and the urgent badge that sticks out at its top right.
export function boxOf(item) {
  const { x, y } = item;
  if (!isCluster(item)) {
    const half = pointSize(item.files) / 2;
    return [x - half, y - half, x + half, y + half];
  }
  const half = clusterSize(item.urgent) / 2;
  if (!item.urgent) return [x - half, y - half, x + half, y + half];
  // The badge: right edge 8px past the circle, top 6px above it.
  const right = x + half + 8;
  return [Math.min(x - half, right - badgeWidth(item.urgent)), y - half - 6, right, y + half];
}

function overlap(a, b) {
  return a[0] < b[2] + GAP && b[0] < a[2] + GAP && a[1] < b[3] + GAP && b[1] < a[3] + GAP;
}

// One drawable item from a supercluster feature and its screen point.
export function itemOf(feature, point, band, urgentScore) {
  const p = feature.properties;
  const bands = new Array(BANDS).fill(0);
  let count = 1;
  let urgent;
  if (p.cluster) {
    count = p.point_count;
    urgent = p.urgent;
    for (let b = 0; b < BANDS; b += 1) bands[b] = p[`b${b}`];
  } else {
    // A lead's own properties, not supercluster's map() of them.
    urgent = p.score >= urgentScore ? 1 : 0;
    bands[band(p.score)] = 1;
  }
  return { x: point.x, y: point.y, count, urgent, files: p.files, bands, parts: [feature] };
}

function merge(a, b) {
  const count = a.count + b.count;
  return {
    // The count-weighted centre: a merge moves the icon towards its leads.
    x: (a.x * a.count + b.x * b.count) / count,
    y: (a.y * a.count + b.y * b.count) / count,
    count,
    urgent: a.urgent + b.urgent,
    files: a.files + b.files,
    bands: a.bands.map((n, i) => n + b.bands[i]),
    parts: [...a.parts, ...b.parts],
  };
}

// `item` moved just enough for its box to lie inside `frame` (a map that
// cannot be panned to see a cut icon whole).
function within(item, frame) {
  if (!frame) return item;
  const [x0, y0, x1, y1] = boxOf(item);
  const dx = Math.max(0, frame[0] - x0) - Math.max(0, x1 - frame[2]);
  const dy = Math.max(0, frame[1] - y0) - Math.max(0, y1 - frame[3]);
  return dx || dy ? { ...item, x: item.x + dx, y: item.y + dy } : item;
}

// `items` merged until no two boxes overlap, each kept inside `frame` when
// one is given. Urgent items absorb the others first, so a merge keeps the
// most urgent place where it was.
export function separate(items, frame = null) {
  let out = items.map((item) => within(item, frame));
  out.sort((a, b) => b.urgent - a.urgent || b.count - a.count);
  let changed = true;
  while (changed) {
    changed = false;
    const boxes = out.map(boxOf);
    search: for (let i = 0; i < out.length; i += 1) {
      for (let j = i + 1; j < out.length; j += 1) {
        if (!overlap(boxes[i], boxes[j])) continue;
        const merged = within(merge(out[i], out[j]), frame);
        out = [merged, ...out.filter((_, k) => k !== i && k !== j)];
        out.sort((a, b) => b.urgent - a.urgent || b.count - a.count);
        changed = true;
        break search;
      }
    }
  }
  return out;
}
