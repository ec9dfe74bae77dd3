// A section whose API has just landed (secrets, invoices, alerting): its objects, by name and
// phase, until the section gets a page of its own.

import { api, tenantPath } from "./api.js";
import { $, h, phaseBadge, showError } from "./ui.js";

async function load() {
  const status = $("#status");
  try {
    const data = (await api("GET", tenantPath(status.dataset.api))).data || {};
    const items = Array.isArray(data.items) ? data.items : [];
    $("#items tbody").replaceChildren(...items.map((item) => h("tr", {},
      h("th", { scope: "row", "data-label": "Name" }, item.name || "—"),
      h("td", { "data-label": "Phase" }, phaseBadge(item.status?.phase)))));
    $("#items").hidden = items.length === 0;
    status.textContent = `${items.length} item(s)`;
  } catch (error) {
    status.textContent = "";
    showError(error);
  }
}

load();
