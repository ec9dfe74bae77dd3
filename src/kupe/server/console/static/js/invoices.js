// Invoices: the running estimate of this month (tenant.status.currentUsage) and every month's
// invoice with its line items. Money stays as the server's decimal strings: never re-computed.

import { api, tenantPath } from "./api.js";
import { $, h, phaseBadge, showError, timeEl } from "./ui.js";

function money(amount, currency) {
  return `${amount} ${currency || ""}`.trim();
}

function lineItems(invoice) {
  const currency = invoice.status.currency;
  const rows = (invoice.status.lineItems || []).map((line) => h("tr", {},
    h("th", { scope: "row", "data-label": "Item" }, line.description),
    h("td", { "data-label": "Quantity" }, `${line.quantity} ${line.unit}`),
    h("td", { "data-label": "Unit price" }, money(line.unitPrice, currency)),
    h("td", { "data-label": "Cost" }, money(line.cost, currency))));
  if (rows.length === 0) return h("span", { class: "muted" }, "none yet");
  return h("details", {},
    h("summary", {}, `Line items of ${invoice.name}`),
    h("table", { class: "stack" },
      h("thead", {}, h("tr", {}, ...["Item", "Quantity", "Unit price", "Cost"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...rows)));
}

async function loadInvoices() {
  try {
    const items = (await api("GET", tenantPath("/invoices"))).data.items || [];
    $("#invoices tbody").replaceChildren(...items.map((invoice) => h("tr", { "data-name": invoice.name },
      h("th", { scope: "row", "data-label": "Month" }, invoice.name),
      h("td", { "data-label": "Phase" }, phaseBadge(invoice.status.phase)),
      h("td", { "data-label": "Subtotal" }, money(invoice.status.subtotal, invoice.status.currency)),
      h("td", { "data-label": "Credits" }, money(invoice.status.creditsApplied, invoice.status.currency)),
      h("td", { "data-label": "Total" }, h("strong", {}, money(invoice.status.total, invoice.status.currency))),
      h("td", { "data-label": "Line items" }, lineItems(invoice)))));
    $("#invoices").hidden = items.length === 0;
    $("#status").textContent = items.length === 1 ? "1 invoice" : `${items.length} invoices`;
  } catch (error) {
    $("#status").textContent = "";
    showError(error);
  }
}

async function loadUsage() {
  try {
    const usage = (await api("GET", tenantPath())).data.status?.currentUsage;
    if (!usage) {
      $("#usage").textContent = "No estimate yet.";
      return;
    }
    const c = usage.compute || {};
    const facts = [
      ["Period", `${usage.periodStart} – ${usage.periodEnd}`],
      ["CPU", `${c.cpuCoreHours} vCPU-hours, ${money(c.cpuCost, usage.currency)}`],
      ["Memory", `${c.memoryGiBHours} GiB-hours, ${money(c.memoryCost, usage.currency)}`],
      ["Storage", `${c.storageGiBHours} GiB-hours, ${money(c.storageCost, usage.currency)}`],
      ["Estimated subtotal", money(usage.estimatedSubtotal, usage.currency)],
      ["Credits", money(usage.estimatedCreditsApplied, usage.currency)],
      ["Estimated total", money(usage.estimatedTotal, usage.currency)],
    ];
    $("#usage-figures").replaceChildren(...facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    $("#usage-figures").hidden = false;
    $("#usage").replaceChildren(
      usage.stale ? `The estimate is not current${usage.error ? `: ${usage.error}` : ""}. ` : "",
      "Updated ", timeEl(usage.updatedAt), ".");
  } catch (error) {
    $("#usage").textContent = "";
    showError(error);
  }
}

loadUsage();
loadInvoices();
