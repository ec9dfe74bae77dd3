// Managed secrets: list with each target's sync state (live while anything is on its way),
// create, edit the targets (If-Match on the secret's ETag), delete with a confirmation.

import { api, tenantPath, newIdempotencyKey } from "./api.js";
import { $, $$, h, announce, busy, clearErrors, phaseBadge, showError, showFieldError, timeEl } from "./ui.js";

const admin = document.body.dataset.role === "admin";
const form = $("#secret-form");
const SETTLED = new Set(["Active", "Degraded"]);
let clusterNames = [];
let editing = null; // {name, etag} while the form edits a secret's targets
let timer = 0;

function secretPath(name) {
  return tenantPath(`/secrets/${encodeURIComponent(name)}`);
}

function explain(error) {
  if (error.code === "NOT_IMPLEMENTED" || error.status === 501) {
    return "Managed secrets need OpenBao: the operator sets KUPE_OPENBAO_ADDR and Kupe's credential.";
  }
  if (error.status === 412) return "The secret changed meanwhile; the list now shows its current targets.";
  return "";
}

// -- the targets of the form: one row per target -------------------------------------------

function targetRow(target = {}) {
  const index = $$(".target", $("#target-rows")).length;
  const id = (field) => `t-${index}-${field}`;
  const cluster = h("select", { id: id("cluster"), "data-field": `sync.${index}.cluster`, "aria-describedby": `${id("cluster")}-error` },
    ...clusterNames.map((name) => h("option", { value: name, selected: name === target.cluster }, name)));
  if (target.cluster && !clusterNames.includes(target.cluster)) {
    cluster.append(h("option", { value: target.cluster, selected: true }, target.cluster));
  }
  const remove = h("button", { type: "button", class: "destructive" }, "Remove");
  const row = h("div", { class: "row target" },
    h("div", { class: "field" },
      h("label", { for: id("cluster") }, `Target ${index + 1} cluster`), cluster,
      h("p", { class: "field-error", id: `${id("cluster")}-error`, hidden: true })),
    h("div", { class: "field" },
      h("label", { for: id("namespace") }, `Target ${index + 1} namespace`),
      h("input", { id: id("namespace"), "data-field": `sync.${index}.namespace`, value: target.namespace || "",
        autocomplete: "off", spellcheck: "false", "aria-describedby": `${id("namespace")}-error` }),
      h("p", { class: "field-error", id: `${id("namespace")}-error`, hidden: true })),
    h("div", { class: "field" },
      h("label", { for: id("secretName") }, `Target ${index + 1} Secret name`),
      h("input", { id: id("secretName"), "data-field": `sync.${index}.secretName`, value: target.secretName || "",
        placeholder: "the secret's name", autocomplete: "off", spellcheck: "false", "aria-describedby": `${id("secretName")}-error` }),
      h("p", { class: "field-error", id: `${id("secretName")}-error`, hidden: true })),
    h("div", { class: "field" }, h("span", { "aria-hidden": "true" }, "\u00a0"), remove));
  remove.setAttribute("aria-label", `Remove target ${index + 1}`);
  remove.addEventListener("click", () => {
    const kept = readTargets().filter((_, i) => i !== index);
    setTargets(kept);
  });
  return row;
}

function readTargets() {
  return $$(".target", $("#target-rows")).map((row, i) => {
    const target = {
      cluster: $(`#t-${i}-cluster`, row).value,
      namespace: $(`#t-${i}-namespace`, row).value.trim(),
    };
    const secretName = $(`#t-${i}-secretName`, row).value.trim();
    if (secretName) target.secretName = secretName;
    return target;
  });
}

function setTargets(targets) {
  $("#target-rows").replaceChildren();
  for (const target of targets) $("#target-rows").append(targetRow(target));
}

function startEdit(secret, etag) {
  editing = { name: secret.name, etag };
  clearErrors(form);
  $("#form-title").textContent = `Targets of ${secret.name}`;
  $("#s-name").value = secret.name;
  $("#s-secretPath").value = secret.secretPath;
  $("#s-name").disabled = true;
  $("#s-secretPath").disabled = true;
  setTargets(secret.sync || []);
  $("#save-secret").textContent = "Save targets";
  $("#cancel-edit").hidden = false;
  form.dataset.mode = "edit";
  $("#form-title").setAttribute("tabindex", "-1");
  $("#form-title").focus();
}

function endEdit() {
  editing = null;
  form.reset();
  clearErrors(form);
  $("#form-title").textContent = "Add a secret";
  $("#s-name").disabled = false;
  $("#s-secretPath").disabled = false;
  setTargets([]);
  $("#save-secret").textContent = "Create secret";
  $("#cancel-edit").hidden = true;
  form.dataset.mode = "create";
}

// -- the list ------------------------------------------------------------------------------

function targetsCell(secret) {
  const statuses = (secret.status && secret.status.syncStatuses) || [];
  if (statuses.length === 0) return h("td", { "data-label": "Targets" }, h("span", { class: "muted" }, "none"));
  return h("td", { "data-label": "Targets" }, h("ul", { class: "plain" }, ...statuses.map((s) => h("li", {},
    `${s.cluster}/${s.namespace}/${s.secretName} `, phaseBadge(s.phase),
    s.sourceVersion ? ` version ${s.sourceVersion}` : "",
    s.lastSyncedAt ? h("span", { class: "muted small" }, " synced ", timeEl(s.lastSyncedAt)) : "",
    s.message ? h("p", { class: "muted small" }, s.message) : null))));
}

function actionsCell(secret) {
  const cell = h("td", { "data-label": "Actions" });
  const edit = h("button", { type: "button" }, "Edit targets");
  edit.setAttribute("aria-label", `Edit targets of ${secret.name}`);
  edit.addEventListener("click", async () => {
    try {
      const current = await api("GET", secretPath(secret.name));
      startEdit(current.data, current.etag);
    } catch (error) {
      showError(error, "#errors", explain(error));
    }
  });
  const ask = h("button", { type: "button", class: "destructive" }, "Delete");
  ask.setAttribute("aria-label", `Delete ${secret.name}`);
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "destructive" }, "Confirm delete");
    const no = h("button", { type: "button" }, "Cancel");
    yes.setAttribute("aria-label", `Confirm deleting ${secret.name}`);
    no.addEventListener("click", () => { cell.replaceChildren(edit, " ", ask); ask.focus(); });
    yes.addEventListener("click", async () => {
      busy(yes, true);
      try {
        await api("DELETE", secretPath(secret.name));
        announce(`${secret.name} is being deleted: its copies are removed from the clusters`);
        if (editing && editing.name === secret.name) endEdit();
        await load();
      } catch (error) {
        showError(error, "#errors", explain(error));
        busy(yes, false);
      }
    });
    cell.replaceChildren(h("span", {}, "Delete this secret and its copies? "), yes, " ", no);
    yes.focus();
  });
  cell.append(edit, " ", ask);
  return cell;
}

async function load() {
  window.clearTimeout(timer);
  try {
    const items = (await api("GET", tenantPath("/secrets"))).data.items || [];
    $("#secrets tbody").replaceChildren(...items.map((secret) => h("tr", { "data-name": secret.name },
      h("th", { scope: "row", "data-label": "Name" }, secret.name),
      h("td", { "data-label": "OpenBao path" }, h("code", {}, secret.secretPath)),
      h("td", { "data-label": "Phase" }, phaseBadge(secret.status && secret.status.phase)),
      targetsCell(secret),
      admin ? actionsCell(secret) : null)));
    $("#secrets").hidden = items.length === 0;
    $("#status").textContent = items.length === 1 ? "1 secret" : `${items.length} secrets`;
    // Live while anything is on its way; a settled list is looked at again now and then.
    const moving = items.some((s) => !SETTLED.has(s.status && s.status.phase));
    timer = window.setTimeout(load, moving ? 1500 : 10000);
  } catch (error) {
    $("#status").textContent = "";
    showError(error, "#errors", explain(error));
  }
}

async function loadClusters() {
  try {
    const items = (await api("GET", tenantPath("/clusters?limit=1000"))).data.items || [];
    clusterNames = items.map((cluster) => cluster.name);
  } catch {
    clusterNames = [];
  }
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const button = $("#save-secret");
  busy(button, true);
  try {
    const sync = readTargets();
    if (editing) {
      await api("PATCH", secretPath(editing.name), { body: { sync }, ifMatch: editing.etag });
      announce(`Targets of ${editing.name} saved; the copies follow`);
      endEdit();
    } else {
      const body = { name: $("#s-name").value.trim(), secretPath: $("#s-secretPath").value.trim(), sync };
      await api("POST", tenantPath("/secrets"), { body, headers: { "Idempotency-Key": newIdempotencyKey() } });
      announce(`${body.name} created; its copies are on their way`);
      endEdit();
    }
    await load();
  } catch (error) {
    if (error.status === 412) {
      endEdit();
      await load();
    }
    showFieldError(form, error, explain(error));
  } finally {
    busy(button, false);
  }
});

$("#add-target")?.addEventListener("click", () => {
  $("#target-rows").append(targetRow());
  const rows = $$(".target", $("#target-rows"));
  $("select", rows[rows.length - 1]).focus();
});
$("#cancel-edit")?.addEventListener("click", endEdit);

if (admin) await loadClusters();
load();
