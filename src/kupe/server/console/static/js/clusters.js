// The cluster list, live: a watch stream when the server offers one, else polling with
// If-None-Match. Rows are updated in place, so focus and scroll stay where they are.

import { api, tenantPath } from "./api.js";
import { $, h, announce, showError, phaseBadge, TRANSIENT } from "./ui.js";

const tenant = document.body.dataset.tenant;
const table = $("#clusters");
const tbody = $("#clusters tbody");
const rows = new Map();
const clusters = new Map();
let etag = null;
let first = true;

function cells(cluster) {
  return {
    displayName: cluster.displayName || "",
    type: cluster.type || "",
    version: cluster.status?.kubernetesVersion || cluster.version || "",
    endpoint: cluster.status?.endpoint || "—",
  };
}

function newRow(cluster) {
  const link = h("a", { href: `/t/${tenant}/clusters/${encodeURIComponent(cluster.name)}` }, cluster.name);
  return h("tr", { "data-name": cluster.name },
    h("th", { scope: "row", "data-label": "Name" }, link),
    h("td", { "data-label": "Display name", "data-cell": "displayName" }),
    h("td", { "data-label": "Type", "data-cell": "type" }),
    h("td", { "data-label": "Version", "data-cell": "version" }),
    h("td", { "data-label": "Phase", "data-cell": "phase" }),
    h("td", { "data-label": "Endpoint", "data-cell": "endpoint" }));
}

function update(row, cluster) {
  for (const [name, text] of Object.entries(cells(cluster))) {
    const cell = row.querySelector(`[data-cell="${name}"]`);
    if (cell.textContent !== text) cell.textContent = text;
  }
  const phase = cluster.status?.phase || "Unknown";
  const cell = row.querySelector('[data-cell="phase"]');
  if (cell.textContent !== phase) cell.replaceChildren(phaseBadge(phase));
}

function render() {
  const names = Array.from(clusters.keys()).sort();
  for (const [name, row] of rows) {
    if (!clusters.has(name)) {
      row.remove();
      rows.delete(name);
      if (!first) announce(`Cluster ${name} is gone`);
    }
  }
  let previous = null;
  for (const name of names) {
    const cluster = clusters.get(name);
    let row = rows.get(name);
    const before = row?.querySelector('[data-cell="phase"]').textContent;
    if (!row) {
      row = newRow(cluster);
      rows.set(name, row);
    }
    update(row, cluster);
    const now = cluster.status?.phase;
    if (!first && before !== undefined && before !== now) announce(`Cluster ${name} is now ${now}`);
    if (previous ? previous.nextSibling !== row : tbody.firstChild !== row) {
      if (previous) previous.after(row); else tbody.prepend(row);
    }
    previous = row;
  }
  table.hidden = names.length === 0;
  $("#empty").hidden = names.length !== 0;
  $("#status").textContent = names.length === 1 ? "1 cluster" : `${names.length} clusters`;
  first = false;
}

function replaceAll(items) {
  clusters.clear();
  for (const item of items) clusters.set(item.name, item);
  render();
}

function busy() {
  return Array.from(clusters.values()).some((c) => TRANSIENT.has(c.status?.phase));
}

async function poll() {
  try {
    const answer = await api("GET", tenantPath("/clusters"), { ifNoneMatch: etag });
    if (answer.status !== 304) {
      etag = answer.etag;
      replaceAll(answer.data.items || []);
    }
    $("#errors").replaceChildren();
  } catch (error) {
    showError(error);
    if (error.status === 401 || error.status === 403) return;
  }
  window.setTimeout(poll, busy() ? 1000 : 4000);
}

// Server-Sent Events: `event:` is ADDED, MODIFIED, DELETED (data: the cluster), BOOKMARK (a
// position, nothing changed) or ERROR (the stream cannot go on: fall back to polling).
async function consume(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const lines = block.split("\n");
      const type = (lines.find((l) => l.startsWith("event:")) || "event: MODIFIED").slice(6).trim();
      const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (type === "ERROR") return;
      if (!data || type === "BOOKMARK") continue;
      const cluster = JSON.parse(data);
      if (!cluster?.name) continue;
      if (type === "DELETED") clusters.delete(cluster.name);
      else clusters.set(cluster.name, cluster);
      render();
    }
  }
}

// Ask for a watch; a server without one answers with the plain list, which is our first poll.
async function start() {
  let response;
  try {
    response = await fetch(tenantPath("/clusters?watch=true"), {
      headers: { Accept: "text/event-stream" }, credentials: "same-origin", cache: "no-store",
    });
  } catch {
    response = null;
  }
  const type = response?.headers.get("Content-Type") || "";
  if (response?.ok && type.startsWith("text/event-stream")) {
    $("#live-mode").textContent = "Live: changes stream from the server.";
    try { await consume(response); } catch { /* the stream broke: fall back below */ }
  }
  $("#live-mode").textContent = "Live: refreshed every few seconds.";
  if (response?.ok && type.includes("json")) {
    etag = response.headers.get("ETag");
    replaceAll((await response.json()).items || []);
    window.setTimeout(poll, busy() ? 1000 : 4000);
    return;
  }
  poll();
}

start();
