// The create form, knowing the plan: the versions on offer, the plan's defaults and what is
// left of the pool, dedicated clusters only where the plan has them; errors at their field.

import { api, tenantPath, newIdempotencyKey } from "./api.js";
import { $, h, busy, clearErrors, showError, showFieldError, quantity, formatAmount, limit } from "./ui.js";

const tenant = document.body.dataset.tenant;
const form = $("#create");
const KINDS = ["cpu", "memory", "storage"];

function remaining(pool, allocated, kind) {
  const most = limit(pool?.[kind]);
  return most === null ? null : quantity(most) - quantity(allocated?.[kind] || "0");
}

function describePlan(plan, status) {
  const pool = plan.resourcePool;
  const used = status.clusterCount ?? 0;
  const most = limit(plan.maxClusters);
  const items = [h("li", {}, `Clusters: ${used} of ${most === null ? "unlimited" : most}`)];
  for (const kind of KINDS) {
    const left = remaining(pool, status.allocatedResources, kind);
    items.push(h("li", {}, `${kind.toUpperCase()}: default ${plan.defaultClusterResources?.[kind] || "—"}, `,
      left === null ? "pool unlimited" : `${formatAmount(kind, left)} left of ${pool[kind]}`));
  }
  $("#plan").replaceChildren(
    h("h2", {}, `Plan: ${plan.displayName || plan.name}`),
    h("ul", { class: "plain" }, items),
  );
}

function fillForm(plan, status, versions) {
  const select = $("#f-version");
  select.replaceChildren(...versions.map((v) =>
    h("option", { value: v.version, selected: v.default }, `${v.version} (${v.kubernetesVersion})${v.default ? " — default" : ""}`)));
  const dedicated = $('#f-type option[value="dedicated"]');
  if (!plan.dedicatedClusters) {
    dedicated.disabled = true;
    $("#f-type-hint").textContent = `The ${plan.displayName || plan.name} plan offers shared clusters only.`;
  } else {
    $("#f-type-hint").textContent = "Dedicated clusters run on machines of their own.";
  }
  for (const kind of KINDS) {
    const input = $(`#f-${kind}`);
    const fallback = plan.defaultClusterResources?.[kind] || "";
    input.placeholder = fallback;
    const left = remaining(plan.resourcePool, status.allocatedResources, kind);
    const unit = kind === "cpu" ? "cores, e.g. 2 or 500m" : "with a unit, e.g. 16Gi";
    $(`#f-${kind}-hint`).textContent = `Default ${fallback || "—"} (${unit})` +
      (left === null ? "." : `; ${formatAmount(kind, left)} left in your pool.`);
  }
}

async function load() {
  try {
    const [tenantAnswer, versions] = await Promise.all([
      api("GET", tenantPath()), api("GET", "/api/v1/versions"),
    ]);
    const info = tenantAnswer.data;
    const plan = (await api("GET", `/api/v1/plans/${encodeURIComponent(info.plan)}`)).data;
    describePlan(plan, info.status || {});
    fillForm(plan, info.status || {}, versions.data.items || []);
  } catch (error) {
    showError(error, "#plan");
  }
}

function body() {
  const value = (id) => $(id).value.trim();
  const out = { name: value("#f-name"), displayName: value("#f-displayName"), type: value("#f-type") };
  if (value("#f-version")) out.version = value("#f-version");
  const resources = {};
  for (const kind of KINDS) if (value(`#f-${kind}`)) resources[kind] = value(`#f-${kind}`);
  if (Object.keys(resources).length) out.resources = resources;
  return out;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const button = form.querySelector('button[type="submit"]');
  busy(button, true);
  try {
    const created = await api("POST", tenantPath("/clusters"), {
      body: body(), headers: { "Idempotency-Key": newIdempotencyKey() },
    });
    location.assign(`/t/${tenant}/clusters?created=${encodeURIComponent(created.data.name)}`);
  } catch (error) {
    showFieldError(form, error);
    busy(button, false);
  }
});

load();
