// The list's selection for bulk actions: a checkbox per lead, one to select
// every lead on the page, and the bar that counts them and opens one case
// per lead (the form #bulk-form, which works without scripts too). The
// selection is of the page shown: list.js draws new rows, unticked, for
// another page, order or filter, and the bar says so. The form is on the
// page only for roles that may open cases.

import { t } from "./ui_text.js";

const form = document.getElementById("bulk-form");
const table = document.getElementById("leads");
const count = document.getElementById("bulk-count");
const button = document.getElementById("bulk-open");
const pickAll = document.getElementById("pick-all");

export const selectable = Boolean(form && table);

function boxes() {
  return [...table.querySelectorAll('tbody input[name="lead"]')];
}

// The first cell of a lead's row: its checkbox, named by the lead's number.
export function pickCell(id) {
  const td = document.createElement("td");
  td.className = "pick";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.name = "lead";
  box.value = String(Number(id));
  box.id = `pick-${Number(id)}`;
  box.setAttribute("form", "bulk-form");
  box.setAttribute("aria-label", t("pick_lead", { id: Number(id) }));
  td.appendChild(box);
  return td;
}

// The count, the button and the select-all box, from the boxes now ticked.
export function drawSelection() {
  if (!selectable) return;
  const all = boxes();
  const chosen = all.filter((b) => b.checked).length;
  count.textContent = t("selected", { count: chosen });
  count.dataset.count = String(chosen);
  button.disabled = chosen === 0;
  pickAll.checked = all.length > 0 && chosen === all.length;
  pickAll.indeterminate = chosen > 0 && chosen < all.length;
  pickAll.disabled = all.length === 0;
}

if (selectable) {
  table.addEventListener("change", (event) => {
    if (event.target === pickAll) {
      for (const box of boxes()) box.checked = pickAll.checked;
    }
    drawSelection();
  });
  // A page brought back from the history keeps the boxes it had ticked.
  window.addEventListener("pageshow", drawSelection);
  drawSelection();
}
