// Small DOM helpers. Text always goes in as text (never as HTML), so nothing the API returns
// can become markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

// The submit buttons of forms a page's script handles come disabled (data-wait-js): a click
// before the script has run would submit the form natively, a GET of the page with the fields
// in its address. DOMContentLoaded fires once every module script has run, handlers attached.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of $$("[data-wait-js]")) {
    button.removeAttribute("data-wait-js");
    button.disabled = false;
  }
});

// Tell screen readers something happened without moving focus.
export function announce(message) {
  const live = $("#live");
  if (!live) return;
  live.textContent = "";
  window.setTimeout(() => { live.textContent = message; }, 50);
}

// An error as the server said it, with the request id an operator can look up in the logs.
export function errorBox(error, extra) {
  const box = h("div", { class: "alert", role: "alert" },
    h("p", {}, error.message),
    extra ? h("p", {}, extra) : null,
    error.requestId ? h("p", { class: "rid" }, "Request id: ", h("code", {}, error.requestId)) : null);
  if (error.status === 401) {
    box.append(h("p", {}, h("a", { href: "/console/signin?next=" + encodeURIComponent(location.pathname) }, "Sign in again")));
  }
  return box;
}

export function showError(error, where = "#errors", extra = "") {
  const target = typeof where === "string" ? $(where) : where;
  if (!target) return;
  target.replaceChildren(errorBox(error, extra));
}

export function clearErrors(form, where = "#errors") {
  const target = $(where);
  if (target) target.replaceChildren();
  if (!form) return;
  for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
  for (const message of $$(".field-error", form)) { message.hidden = true; message.textContent = ""; }
}

// Put the server's error at the field it names (`field`), else above the form.
export function showFieldError(form, error, extra = "") {
  const input = error.field ? form.querySelector(`[data-field="${CSS.escape(error.field)}"]`) : null;
  if (!input) {
    showError(error, "#errors", extra);
    return;
  }
  input.setAttribute("aria-invalid", "true");
  const message = document.getElementById(`${input.id}-error`);
  if (message) {
    message.textContent = error.message + (error.requestId ? ` (request id ${error.requestId})` : "");
    message.hidden = false;
  }
  input.focus();
}

export function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

export function when(timestamp) {
  if (!timestamp) return "—";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toLocaleString();
}

export function timeEl(timestamp) {
  return timestamp ? h("time", { datetime: timestamp }, when(timestamp)) : "—";
}

const PHASE_CLASSES = {
  Running: "ok", Active: "ok", Synced: "ok", Paid: "ok",
  Failed: "bad", Degraded: "bad", Error: "bad", PastDue: "bad",
};

export function phaseBadge(phase) {
  return h("span", { class: `phase ${PHASE_CLASSES[phase] || "busy"}` }, phase || "Unknown");
}

export function describeResources(resources) {
  if (!resources) return "plan defaults";
  return ["cpu", "memory", "storage"]
    .filter((k) => resources[k]).map((k) => `${k} ${resources[k]}`).join(", ") || "plan defaults";
}

// Kubernetes quantities to plain numbers, for bars and arithmetic shown to people only.
const SUFFIX = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

export function quantity(text) {
  const match = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(text || "").trim());
  if (!match) return NaN;
  const factor = match[2] ? SUFFIX[match[2]] : 1;
  return factor === undefined ? NaN : Number(match[1]) * factor;
}

// A plan limit, or null when there is none (the API writes "unlimited", or -1 for counts).
export function limit(value) {
  if (value === undefined || value === null || value === "unlimited") return null;
  if (typeof value === "number" && value < 0) return null;
  return value;
}

export function formatAmount(kind, value) {
  if (!Number.isFinite(value)) return "?";
  if (kind === "cpu") return String(Math.round(value * 1000) / 1000);
  const gib = value / 2 ** 30;
  return `${Math.round(gib * 100) / 100}Gi`;
}

// Once any request finds the session ended, say so once, with the way back.
document.addEventListener("kupe:signed-out", () => {
  if (document.getElementById("session-ended")) return;
  const next = encodeURIComponent(location.pathname);
  $("#main")?.prepend(h("div", { id: "session-ended", class: "alert", role: "alert" },
    "Your session has ended. ", h("a", { href: `/console/signin?next=${next}` }, "Sign in again")));
});

export const TRANSIENT = new Set(["Pending", "Provisioning", "Upgrading", "Migrating", "Terminating"]);
