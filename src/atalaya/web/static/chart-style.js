// Chart.js settings shared by the charts page and a lead's page.

/* global Chart */

export const COLOURS = {
  sightings: "#2f6f9f",
  leads: "#c0562f",
};

export function readJSON(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

// A paler tint of a "#rrggbb" colour, for bars whose figure is not final.
export function lighter(colour, amount = 0.55) {
  const n = parseInt(colour.slice(1), 16);
  const mix = (c) => Math.round(c + (255 - c) * amount);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map(mix);
  return `rgb(${r}, ${g}, ${b})`;
}

export function bar(canvas, labels, values, label, colour, horizontal = false, onClick = null) {
  if (!canvas) return null;
  if (horizontal) {
    // One readable row per label: the box grows with the provinces listed.
    const box = canvas.parentElement;
    if (box) box.style.height = `${Math.max(240, labels.length * 22 + 40)}px`;
  }
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label, data: values, backgroundColor: colour }] },
    options: {
      onClick: onClick || undefined,
      onHover: onClick
        ? (event, elements) => {
            event.native.target.style.cursor = elements.length ? "pointer" : "default";
          }
        : undefined,
      indexAxis: horizontal ? "y" : "x",
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: {
        [horizontal ? "x" : "y"]: { beginAtZero: true, ticks: { precision: 0 } },
        // Every province named: Chart.js would otherwise skip labels to fit.
        ...(horizontal ? { y: { ticks: { autoSkip: false } } } : {}),
      },
    },
  });
}
