// One cluster: phase, conditions and connection details kept live by polling with
// If-None-Match; the events timeline when the server has one; upgrade, resize and delete.

import { api, tenantPath } from "./api.js";
import {
  $, h, announce, busy, clearErrors, showError, showFieldError, timeEl, describeResources, TRANSIENT,
} from "./ui.js";

const tenant = document.body.dataset.tenant;
const admin = document.body.dataset.role === "admin";
const name = $("#cluster-name").dataset.cluster;
const path = tenantPath(`/clusters/${encodeURIComponent(name)}`);
const SERVING = new Set(["Running", "Upgrading", "Degraded"]);
let cluster = null;
let etag = null;
let versions = [];
let connectedFor = null;
let eventsOffered = true;

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function renderFacts() {
  const s = cluster.status || {};
  $("#facts").replaceChildren(...[
    fact("Display name", cluster.displayName),
    fact("Type", cluster.type),
    fact("Version", `${cluster.version}${s.kubernetesVersion ? ` (running ${s.kubernetesVersion})` : ""}`),
    fact("Resources", describeResources(s.allocatedResources || cluster.resources)),
    fact("Endpoint", s.endpoint || "—"),
    fact("High availability", cluster.highAvailability
      ? `on${s.haPhase ? ` (${s.haPhase}, ${s.haReplicasReady ?? 0} of ${s.haReplicasDesired ?? 3} replicas ready)` : ""}`
      : "off"),
    fact("Generation", `${cluster.generation} (applied: ${s.observedGeneration ?? 0})`),
    fact("Created", timeEl(cluster.createdAt)),
  ].flat());
  $("#conditions tbody").replaceChildren(...(s.conditions || []).map((c) => h("tr", {},
    h("th", { scope: "row", "data-label": "Type" }, c.type),
    h("td", { "data-label": "Status" }, c.status),
    h("td", { "data-label": "Reason" }, c.reason || ""),
    h("td", { "data-label": "Message" }, c.message || ""),
    h("td", { "data-label": "Since" }, timeEl(c.lastTransitionTime)))));
}

function renderPhase() {
  const phase = cluster.status?.phase || "Unknown";
  const badge = $("#phase");
  if (badge.textContent !== phase) {
    if (badge.textContent !== "…") announce(`Cluster ${name} is now ${phase}`);
    badge.textContent = phase;
    badge.className = `phase ${phase === "Running" ? "ok" : TRANSIENT.has(phase) ? "busy" : "bad"}`;
  }
  $("#download").disabled = !SERVING.has(phase);
}

async function renderConnection() {
  const phase = cluster.status?.phase;
  if (!SERVING.has(phase) || connectedFor === cluster.resourceVersion) return;
  connectedFor = cluster.resourceVersion;
  try {
    const details = (await api("GET", `${path}/kubeconfig`)).data;
    let ca = details.certificateAuthority || "";
    try { ca = atob(ca); } catch { /* show it as sent */ }
    $("#connection").replaceChildren(h("dl", { class: "facts" },
      ...fact("API server", details.endpoint),
      ...fact("Certificate authority", h("details", {}, h("summary", {}, "Show PEM"), h("pre", {}, ca)))));
  } catch (error) {
    showError(error, "#connection");
  }
}

function nextMinor() {
  const index = versions.findIndex((v) => v.version === cluster.version);
  return index >= 0 && index + 1 < versions.length ? versions[index + 1].version : null;
}

function renderUpgrade() {
  if (!admin) return;
  const next = nextMinor();
  const phase = cluster.status?.phase;
  const button = $("#upgrade");
  const info = $("#upgrade-info");
  if (!next) {
    info.textContent = `Version ${cluster.version} is the newest on offer.`;
    button.hidden = true;
    return;
  }
  info.textContent = phase === "Running"
    ? `Upgrades go one minor version at a time. Next: ${next}.`
    : `Upgrades are possible while the cluster is Running (now ${phase}).`;
  button.textContent = `Upgrade to ${next}`;
  button.dataset.version = next;
  button.hidden = false;
  button.disabled = phase !== "Running";
}

function renderHa() {
  if (!admin) return;
  const button = $("#enable-ha");
  const phase = cluster.status?.phase;
  if (cluster.highAvailability) {
    $("#ha-info").textContent = "On: the control plane runs three replicas.";
    button.hidden = true;
    return;
  }
  $("#ha-info").textContent = phase === "Running"
    ? "Off. Turning it on moves the cluster through Migrating; it cannot be turned off again."
    : `Off. It can be turned on while the cluster is Running (now ${phase}).`;
  button.hidden = false;
  button.disabled = phase !== "Running";
}

function fillResize() {
  const form = $("#resize");
  if (!admin || form.dataset.filled === String(cluster.generation)) return;
  if (form.contains(document.activeElement)) return;
  const current = cluster.status?.allocatedResources || cluster.resources || {};
  for (const kind of ["cpu", "memory", "storage"]) $(`#r-${kind}`).value = current[kind] || "";
  form.dataset.filled = String(cluster.generation);
}

async function loadEvents() {
  if (!eventsOffered) return;
  try {
    const answer = await api("GET", `${path}/events`);
    const items = answer.data?.items || [];
    $("#timeline").replaceChildren(...items.map((e) => h("li", {},
      timeEl(e.time), " ", h("strong", {}, e.reason || e.type), " ", e.message || "",
      e.actor ? h("span", { class: "muted" }, ` — ${e.actor}`) : null)));
    $("#events").hidden = false;
  } catch {
    // Not offered by this server (yet): the timeline stays hidden.
    eventsOffered = false;
  }
}

function gone() {
  $("#details").hidden = true;
  $("#phase").textContent = "Deleted";
  const notice = $("#gone");
  notice.replaceChildren(`Cluster ${name} has been deleted. `, h("a", { href: `/t/${tenant}/clusters` }, "Back to clusters"));
  notice.hidden = false;
  announce(`Cluster ${name} has been deleted`);
}

async function refresh() {
  try {
    const answer = await api("GET", path, { ifNoneMatch: etag });
    if (answer.status !== 304) {
      cluster = answer.data;
      etag = answer.etag;
      $("#details").hidden = false;
      renderPhase();
      renderFacts();
      renderUpgrade();
      renderHa();
      fillResize();
      renderConnection();
      loadEvents();
    }
    $("#errors").replaceChildren();
  } catch (error) {
    if (error.status === 404) { gone(); return; }
    showError(error);
    if (error.status === 401 || error.status === 403) return;
  }
  window.setTimeout(refresh, TRANSIENT.has(cluster?.status?.phase) ? 1000 : 4000);
}

async function download() {
  const button = $("#download");
  busy(button, true);
  try {
    const answer = await api("GET", `${path}/kubeconfig?format=kubeconfig`, { accept: "application/yaml" });
    const url = URL.createObjectURL(new Blob([answer.data], { type: "application/yaml" }));
    const link = h("a", { href: url, download: `kupe-${tenant}-${name}.kubeconfig` });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    announce("Kubeconfig downloaded");
  } catch (error) {
    showError(error);
  } finally {
    busy(button, !SERVING.has(cluster?.status?.phase));
  }
}

async function patch(body, form, button) {
  clearErrors(form);
  busy(button, true);
  try {
    const answer = await api("PATCH", path, { body, ifMatch: etag });
    cluster = answer.data;
    etag = answer.etag;
    renderPhase(); renderFacts(); renderUpgrade(); renderHa();
    return true;
  } catch (error) {
    const extra = error.status === 412 ? "The cluster changed meanwhile; the page now shows its latest state." : "";
    if (form) showFieldError(form, error, extra); else showError(error, "#errors", extra);
    return false;
  } finally {
    busy(button, false);
    renderUpgrade();
  }
}

function wireAdmin() {
  if (!admin) return;
  $("#upgrade").addEventListener("click", async (event) => {
    const version = event.currentTarget.dataset.version;
    if (await patch({ version }, null, event.currentTarget)) announce(`Upgrading to ${version}`);
  });
  $("#enable-ha").addEventListener("click", async (event) => {
    if (await patch({ highAvailability: true }, null, event.currentTarget)) {
      announce("Enabling high availability");
    }
  });
  $("#resize").addEventListener("submit", async (event) => {
    event.preventDefault();
    const resources = {};
    for (const kind of ["cpu", "memory", "storage"]) {
      const value = $(`#r-${kind}`).value.trim();
      if (value) resources[kind] = value;
    }
    if (await patch({ resources }, event.currentTarget, event.submitter || $("#resize button"))) {
      announce("Resize accepted");
    }
  });
  const confirm = $("#confirm-name");
  confirm.addEventListener("input", () => { $("#delete-button").disabled = confirm.value !== name; });
  $("#delete").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (confirm.value !== name) return;
    const button = $("#delete-button");
    busy(button, true);
    try {
      await api("DELETE", path);
      announce(`Deleting cluster ${name}`);
    } catch (error) {
      showError(error);
      busy(button, false);
    }
  });
}

$("#download").addEventListener("click", download);
wireAdmin();
api("GET", "/api/v1/versions").then((a) => { versions = a.data.items || []; if (cluster) renderUpgrade(); }).catch(() => {});
refresh();
