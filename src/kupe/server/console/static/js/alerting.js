// Alerting: receivers (list, add or replace as JSON, delete), the routes (a JSON list, saved
// with If-Match) and the effective configuration Kupe renders, credentials masked throughout.

import { api, tenantPath } from "./api.js";
import { $, h, announce, busy, clearErrors, showError } from "./ui.js";

const admin = document.body.dataset.role === "admin";
const base = tenantPath("/alertmanager");
let routesEtag = null;

function integrations(receiver) {
  return Object.keys(receiver).filter((key) => key.endsWith("_configs")).map((key) => key.replace(/_configs$/, "")).join(", ") || "none";
}

function deleteCell(receiver) {
  const cell = h("td", { "data-label": "Actions" });
  const ask = h("button", { type: "button", class: "destructive", "aria-label": `Delete ${receiver.name}` }, "Delete");
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "destructive", "aria-label": `Confirm deleting ${receiver.name}` }, "Confirm delete");
    const no = h("button", { type: "button" }, "Cancel");
    no.addEventListener("click", () => { cell.replaceChildren(ask); ask.focus(); });
    yes.addEventListener("click", async () => {
      busy(yes, true);
      try {
        await api("DELETE", `${base}/receivers/${encodeURIComponent(receiver.name)}`);
        announce(`Receiver ${receiver.name} deleted`);
        await load();
      } catch (error) {
        showError(error);
        cell.replaceChildren(ask);
      }
    });
    cell.replaceChildren(h("span", {}, "Delete this receiver? "), yes, " ", no);
    yes.focus();
  });
  cell.append(ask);
  return cell;
}

async function load() {
  try {
    const items = (await api("GET", `${base}/receivers`)).data.items || [];
    $("#receivers tbody").replaceChildren(...items.map((receiver) => h("tr", { "data-name": receiver.name },
      h("th", { scope: "row", "data-label": "Name" }, receiver.name),
      h("td", { "data-label": "Integrations" }, integrations(receiver)),
      admin ? deleteCell(receiver) : null)));
    $("#receivers").hidden = items.length === 0;
    $("#status").textContent = items.length === 1 ? "1 receiver" : `${items.length} receivers`;
    const routes = await api("GET", `${base}/routes`);
    routesEtag = routes.etag;
    const box = $("#routes-body");
    if (box && document.activeElement !== box) box.value = JSON.stringify(routes.data.items || [], null, 2);
    const config = await api("GET", `${base}/config`);
    $("#config").textContent = JSON.stringify(config.data, null, 2);
  } catch (error) {
    $("#status").textContent = "";
    showError(error);
  }
}

function parsed(box, where) {
  try {
    return JSON.parse(box.value);
  } catch {
    const message = $(where);
    message.textContent = "This is not valid JSON.";
    message.hidden = false;
    box.setAttribute("aria-invalid", "true");
    box.focus();
    return undefined;
  }
}

// Alertmanager's refusal names no field: show it at the text it is about.
function refused(box, where, error) {
  const message = $(where);
  message.textContent = error.message + (error.requestId ? ` (request id ${error.requestId})` : "");
  message.hidden = false;
  box.setAttribute("aria-invalid", "true");
  box.focus();
}

$("#receiver-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const body = parsed($("#r-body"), "#r-body-error");
  if (body === undefined) return;
  const name = $("#r-name").value.trim();
  const button = form.querySelector('button[type="submit"]');
  busy(button, true);
  try {
    await api("PUT", `${base}/receivers/${encodeURIComponent(name)}`, { body });
    announce(`Receiver ${name} saved`);
    await load();
  } catch (error) {
    if (error.field === "name") refused($("#r-name"), "#r-name-error", error);
    else refused($("#r-body"), "#r-body-error", error);
  } finally {
    busy(button, false);
  }
});

$("#routes-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const items = parsed($("#routes-body"), "#routes-body-error");
  if (items === undefined) return;
  const button = form.querySelector('button[type="submit"]');
  busy(button, true);
  try {
    await api("PUT", `${base}/routes`, { body: { items: items.length ? items : null }, ifMatch: routesEtag });
    announce("Routes saved");
    $("#routes-body").blur();
    await load();
  } catch (error) {
    refused($("#routes-body"), "#routes-body-error", error);
    if (error.status === 412) await load();
  } finally {
    busy(button, false);
  }
});

load();
