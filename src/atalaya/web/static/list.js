// The list beside the map: a page of the selection from /api/leads, drawn
// without reloading the page. Paging and sorting fetch the list only (the
// map does not depend on the list's order or page); filters.js calls
// `loadList(query)` when a filter changes. Every text goes in through
// textContent: ISP names and places are data, never markup.

import { getJSON } from "./net.js";
import { t } from "./ui_text.js";
import { drawSelection, pickCell, selectable } from "./bulk.js";

const table = document.getElementById("leads");
const body = table ? table.querySelector("tbody") : null;
const COLUMNS = selectable ? 11 : 10;

function utc(iso) {
  return iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text instanceof Node) td.appendChild(text);
  else td.textContent = text === null || text === undefined ? "" : String(text);
  row.appendChild(td);
  return td;
}

function figure(period, all) {
  // The window's figure, the lead's whole history after it.
  const span = document.createElement("span");
  span.textContent = String(period ?? 0);
  const small = document.createElement("small");
  small.textContent = ` / ${all}`;
  const wrap = document.createDocumentFragment();
  wrap.append(span, small);
  return wrap;
}

function place(lead) {
  const parts = [lead.municipality_name, lead.province_name].filter(Boolean);
  return parts.join(", ") || lead.country || "unplaced";
}

function leadRow(lead, query) {
  const tr = document.createElement("tr");
  tr.dataset.leadId = String(lead.id);
  if (selectable) tr.appendChild(pickCell(lead.id));
  const link = document.createElement("a");
  link.href = `/leads/${Number(lead.id)}?back=${encodeURIComponent(query)}`;
  link.textContent = `#${lead.id}`;
  const first = cell(tr, link);
  if (lead.new) {
    const badge = document.createElement("span");
    badge.className = "new-badge";
    badge.textContent = t("new");
    first.append(" ", badge);
  }
  const score = document.createElement("span");
  score.className = `score band-${Number(lead.band)}`;
  score.textContent = `${Number(lead.score).toFixed(1)}${lead.overridden ? "*" : ""}`;
  cell(tr, score);
  cell(tr, utc(lead.last_seen));
  cell(tr, place(lead));
  cell(tr, lead.isp || (lead.asn !== null && lead.asn !== undefined ? `AS${lead.asn}` : ""));
  cell(tr, figure(lead.period_known_files, lead.known_files), "period known-files");
  cell(tr, figure(lead.period_sightings, lead.sightings), "period sightings");
  cell(tr, lead.highest_category || "");
  cell(tr, (lead.flags || []).join(" "));
  const conflict = cell(tr, "");
  if (lead.conflict && lead.conflict.length) {
    const badge = document.createElement("span");
    badge.className = "conflict";
    badge.title = t("conflict_title");
    badge.textContent = t("conflict");
    conflict.appendChild(badge);
  }
  return tr;
}

function withParam(query, name, value) {
  const params = new URLSearchParams(query);
  params.delete(name);
  if (value !== null && value !== undefined && value !== "") params.set(name, value);
  return params.toString();
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

function drawPager(answer, query) {
  const prev = document.getElementById("prev-page");
  const next = document.getElementById("next-page");
  setText("page-of", `page ${answer.page} of ${answer.pages}`);
  prev.hidden = answer.page <= 1;
  next.hidden = answer.page >= answer.pages;
  prev.href = `/?${withParam(query, "page", answer.page > 2 ? answer.page - 1 : null)}`;
  next.href = `/?${withParam(query, "page", answer.page + 1)}`;
  prev.dataset.page = String(answer.page - 1);
  next.dataset.page = String(answer.page + 1);
  const base = answer.query;
  document.getElementById("export-csv").href = `/export?format=csv&${base}`;
  document.getElementById("export-geojson").href = `/export?format=geojson&${base}`;
}

function drawSort(sort) {
  const key = sort.replace(/^-/, "");
  for (const th of table.querySelectorAll("th[data-sort]")) {
    const mine = th.dataset.sort === key;
    th.setAttribute(
      "aria-sort",
      mine ? (sort.startsWith("-") ? "descending" : "ascending") : "none",
    );
  }
}

let pending = 0;
let loads = 0;

// `query`: the filters, with `sort` and `page` if any. Resolves once drawn.
export async function loadList(query) {
  const mine = ++pending;
  table.setAttribute("aria-busy", "true");
  let answer;
  try {
    const response = await getJSON(`/api/leads?${query}`);
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `the list answered ${response.status}`);
  } catch (error) {
    if (mine === pending) {
      table.removeAttribute("aria-busy");
      setText("list-error", t("list_failed", { error: error.message }));
    }
    return null;
  }
  if (mine !== pending) return null;
  loads += 1;
  setText("list-error", "");
  const linkQuery = answer.query;
  body.replaceChildren(...answer.leads.map((lead) => leadRow(lead, linkQuery)));
  if (!answer.leads.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, "No leads in this selection.");
    td.colSpan = COLUMNS;
    body.appendChild(tr);
  }
  setText("lead-total", String(answer.total));
  setText("list-window", `${answer.since} to ${answer.until}`);
  const places = answer.provinces.map((p) => p.name);
  if (answer.municipality) places.push(answer.municipality);
  if (new URLSearchParams(query).get("area")) places.push("drawn area");
  setText("list-places", places.length ? ` · ${places.join(", ")}` : "");
  const unplaced = answer.total - answer.placed;
  setText(
    "list-placed",
    `${answer.placed} on the map${unplaced ? `, ${unplaced} without a place` : ""}.`,
  );
  drawPager(answer, query);
  drawSort(answer.sort);
  // New rows, none ticked: the selection was of the page that was shown.
  drawSelection();
  table.dataset.loads = String(loads);
  table.removeAttribute("aria-busy");
  return answer;
}
