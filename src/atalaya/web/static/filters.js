// The filter form. One behaviour for every filter: a change applies at
// once, to the map and to the list together, without reloading the page
// (the map keeps its centre and zoom). The URL follows, so the address bar
// is always the view to share: a filter change is a new history entry
// (Back returns to the view before it, loaded again from its URL), while
// sorting and paging replace the current one.
// Paging and sorting fetch the list alone. Without scripts the form and
// its Apply button work as a plain GET.

import { reloadMap } from "./map.js";
import { loadList } from "./list.js";
import { getJSON } from "./net.js";

const form = document.getElementById("filters");

function isoWeek(day) {
  // ISO 8601 week of a UTC date: the week holding that Thursday.
  const d = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((d - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

function weekDays(value) {
  const match = /^(\d{4})-W(\d{2})$/.exec(value);
  if (!match) return null;
  const year = Number(match[1]);
  const week = Number(match[2]);
  // Monday of week 1 is the Monday on or before 4 January.
  const jan4 = new Date(Date.UTC(year, 0, 4));
  const monday = new Date(jan4);
  monday.setUTCDate(jan4.getUTCDate() - ((jan4.getUTCDay() || 7) - 1) + (week - 1) * 7);
  const sunday = new Date(monday);
  sunday.setUTCDate(monday.getUTCDate() + 6);
  return [monday.toISOString().slice(0, 10), sunday.toISOString().slice(0, 10)];
}

// The form's filters as a query string; empty fields stay out of the URL.
function formQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form).entries()) {
    if (value !== "") params.append(name, value);
  }
  return params;
}

function show(params, { push = false } = {}) {
  const text = params.toString();
  const url = text ? `/?${text}` : "/";
  if (push) history.pushState({ filters: text }, "", url);
  else history.replaceState(history.state, "", url);
  for (const link of document.querySelectorAll("a[data-keeps-filters]")) {
    link.href = `${link.dataset.keepsFilters}${text ? `?${text}` : ""}`;
  }
  // Saving a search saves the view now shown.
  for (const input of document.querySelectorAll("input.current-query")) {
    const filters = new URLSearchParams(text);
    filters.delete("page");
    input.value = filters.toString();
  }
}

if (form) {
  const week = document.getElementById("week");
  const from = document.getElementById("from");
  const to = document.getElementById("to");
  const province = document.getElementById("province");
  const municipality = document.getElementById("municipality");
  const area = document.getElementById("area");
  const sort = document.getElementById("sort");
  const areaNote = document.getElementById("area-note");
  const areaHint = document.getElementById("area-hint");
  let applied = formQuery().toString();

  function syncWeek() {
    // Show the week of the window when it is exactly one ISO week.
    const since = new Date(`${from.value}T00:00:00Z`);
    const until = new Date(`${to.value}T00:00:00Z`);
    week.value =
      since.getUTCDay() === 1 && until - since === 6 * 86400000 ? isoWeek(since) : "";
  }

  async function refreshMunicipalities() {
    const chosen = [...province.selectedOptions].map((o) => o.value).filter(Boolean);
    const keep = municipality.value;
    municipality.replaceChildren(new Option("any", ""));
    municipality.disabled = chosen.length !== 1;
    if (chosen.length !== 1) return;
    const response = await getJSON(
      `/api/municipalities?province=${encodeURIComponent(chosen[0])}`,
    );
    if (!response.ok) return;
    for (const m of await response.json()) {
      municipality.add(new Option(m.name, m.code, false, m.code === keep));
    }
  }

  function showArea() {
    const drawn = Boolean(area.value);
    areaNote.hidden = !drawn;
    areaHint.hidden = drawn;
    if (drawn) {
      document.getElementById("area-corners").textContent = String(area.value.split(",").length);
    }
  }

  // Every filter, whichever changed: map and list together, page 1.
  async function apply() {
    if (!form.reportValidity()) return;
    const params = formQuery();
    const text = params.toString();
    if (text === applied) return;
    applied = text;
    show(params, { push: true });
    showArea();
    await Promise.all([reloadMap(text), loadList(text)]);
  }

  week.addEventListener("change", () => {
    const days = weekDays(week.value);
    if (days) [from.value, to.value] = days;
    apply();
  });
  for (const input of [from, to]) {
    input.addEventListener("change", () => {
      syncWeek();
      apply();
    });
  }
  province.addEventListener("change", async () => {
    const chosen = [...province.selectedOptions].map((o) => o.value).filter(Boolean);
    if (chosen.length !== 1 || !municipality.value.startsWith(chosen[0])) {
      municipality.value = "";
    }
    // "any" and provinces together mean the provinces.
    if (chosen.length) province.options[0].selected = false;
    await refreshMunicipalities();
    apply();
  });
  for (const name of ["municipality", "network", "category", "status", "min_score"]) {
    document.getElementById(name).addEventListener("change", apply);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener("filters:change", apply);
  document.getElementById("clear-area").addEventListener("click", (event) => {
    event.preventDefault();
    area.value = "";
    apply();
  });
  // Sorting and paging: the list alone.
  const table = document.getElementById("leads");
  for (const button of table.querySelectorAll("th[data-sort] button")) {
    button.addEventListener("click", () => {
      const key = button.closest("th").dataset.sort;
      const current = sort.value || "-score";
      // A second click on the same column turns the order round.
      sort.value = current === `-${key}` ? key : `-${key}`;
      if (sort.value === "-score") sort.value = "";
      const params = formQuery();
      applied = params.toString();
      show(params);
      loadList(applied);
    });
  }
  for (const id of ["prev-page", "next-page"]) {
    document.getElementById(id).addEventListener("click", (event) => {
      event.preventDefault();
      const params = formQuery();
      const page = Number(event.currentTarget.dataset.page);
      if (page > 1) params.set("page", String(page));
      history.replaceState(history.state, "", `/?${params}`);
      loadList(params.toString());
    });
  }
  // Back and Forward between filter views: the page of that URL, as a
  // shared link would open it (the form, map and list all from the URL).
  window.addEventListener("popstate", () => window.location.reload());
  document.getElementById("apply").hidden = true;
  syncWeek();
  showArea();
}
