// The tenant: its plan (changed here, with the downgrade guard's message) and its usage of
// the plan's pool as a bar per resource.

import { api, tenantPath } from "./api.js";
import {
  $, h, announce, busy, clearErrors, showFieldError, showError, quantity, formatAmount, timeEl, limit,
} from "./ui.js";

function bar(kind, used, pool) {
  const label = `${kind.toUpperCase()}`;
  if (limit(pool) === null) {
    return h("div", { class: "usage" }, h("span", { class: "usage-label" }, label), ` ${used} allocated; the pool is unlimited`);
  }
  const max = quantity(pool);
  const value = Math.min(quantity(used || "0"), max);
  const percent = max > 0 ? Math.round((value / max) * 100) : 0;
  const id = `usage-${kind}`;
  return h("div", { class: "usage" },
    h("label", { for: id, class: "usage-label" }, label),
    h("meter", { id, min: 0, max, value, low: max * 0.7, high: max * 0.9, optimum: 0 },
      `${percent}%`),
    h("span", { class: "usage-text" }, `${formatAmount(kind, quantity(used || "0"))} of ${pool} (${percent}%)`));
}

async function render(info) {
  const plan = (await api("GET", `/api/v1/plans/${encodeURIComponent(info.plan)}`)).data;
  const status = info.status || {};
  const fact = (t, v) => [h("dt", {}, t), h("dd", {}, v)];
  $("#facts").replaceChildren(...[
    fact("Name", info.name), fact("Display name", info.displayName),
    fact("Contact", info.contactEmail), fact("Plan", plan.displayName || plan.name),
    fact("Phase", status.phase), fact("Clusters", `${status.clusterCount ?? 0} of ${limit(plan.maxClusters) ?? "unlimited"}`),
    fact("Created", timeEl(info.createdAt)),
  ].flat());
  const pool = status.poolResources || plan.resourcePool || null;
  const allocated = status.allocatedResources || {};
  $("#usage").replaceChildren(...["cpu", "memory", "storage"].map((k) => bar(k, allocated[k] || "0", pool?.[k])));
}

async function load() {
  try {
    const answer = await api("GET", tenantPath());
    await render(answer.data);
    return answer.data;
  } catch (error) {
    showError(error);
    return null;
  }
}

async function wirePlan(info) {
  const form = $("#plan-form");
  if (!form || !info) return;
  const plans = (await api("GET", "/api/v1/plans")).data.items || [];
  $("#t-plan").replaceChildren(...plans.map((p) => h("option", { value: p.name, selected: p.name === info.plan },
    `${p.displayName || p.name} — £${p.platformFee}/month, up to ${limit(p.maxClusters) ?? "unlimited"} clusters`)));
  $("#t-plan-hint").textContent = "Moving to a smaller plan is refused while the tenant uses more than it allows.";
  // Enabled only now, so nothing is chosen before the plans are there.
  $("#t-plan").disabled = false;
  form.querySelector('button[type="submit"]').disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    busy(button, true);
    try {
      // No If-Match: the tenant's version moves with every cluster's status, and choosing a
      // plan does not depend on what else the page showed.
      const answer = await api("PATCH", tenantPath(), { body: { plan: $("#t-plan").value } });
      await render(answer.data);
      announce(`Plan changed to ${answer.data.plan}`);
    } catch (error) {
      if (!error.field && error.code === "PLAN_DOWNGRADE_BLOCKED") error.field = "plan";
      showFieldError(form, error);
    } finally {
      busy(button, false);
    }
  });
}

load().then(wirePlan);
