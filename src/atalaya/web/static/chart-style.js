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

export function bar(canvas, labels, values, label, colour, horizontal = false) {
  if (!canvas) return null;
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label, data: values, backgroundColor: colour }] },
    options: {
      indexAxis: horizontal ? "y" : "x",
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: {
        [horizontal ? "x" : "y"]: { beginAtZero: true, ticks: { precision: 0 } },
      },
    },
  });
}
