// API keys: create (the key shown once, with a copy button), list, revoke.

import { api, tenantPath, newIdempotencyKey } from "./api.js";
import { $, h, announce, busy, clearErrors, showError, showFieldError, timeEl } from "./ui.js";

const admin = document.body.dataset.role === "admin";

function revokeCell(key) {
  const cell = h("td", { "data-label": "Actions" });
  const ask = h("button", { type: "button", class: "destructive" }, "Revoke");
  ask.setAttribute("aria-label", `Revoke ${key.displayName} (${key.id})`);
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "destructive" }, "Confirm revoke");
    const no = h("button", { type: "button" }, "Cancel");
    yes.setAttribute("aria-label", `Confirm revoking ${key.displayName} (${key.id})`);
    no.addEventListener("click", () => { cell.replaceChildren(ask); ask.focus(); });
    yes.addEventListener("click", async () => {
      busy(yes, true);
      try {
        await api("DELETE", tenantPath(`/apikeys/${encodeURIComponent(key.id)}`));
        announce(`Key ${key.displayName} revoked`);
        await load();
      } catch (error) {
        showError(error);
        busy(yes, false);
      }
    });
    cell.replaceChildren(h("span", {}, "Revoke this key? "), yes, " ", no);
    yes.focus();
  });
  cell.append(ask);
  return cell;
}

async function load() {
  try {
    const items = (await api("GET", tenantPath("/apikeys"))).data.items || [];
    $("#keys tbody").replaceChildren(...items.map((key) => h("tr", { "data-id": key.id },
      h("th", { scope: "row", "data-label": "Name" }, key.displayName),
      h("td", { "data-label": "Id" }, h("code", {}, key.id)),
      h("td", { "data-label": "Role" }, key.role),
      h("td", { "data-label": "Created by" }, key.createdBy),
      h("td", { "data-label": "Created" }, timeEl(key.createdAt)),
      h("td", { "data-label": "Expires" }, timeEl(key.expiresAt)),
      h("td", { "data-label": "Last used" }, timeEl(key.lastUsedAt)),
      admin ? revokeCell(key) : null)));
    $("#keys").hidden = items.length === 0;
    $("#status").textContent = items.length === 1 ? "1 active key" : `${items.length} active keys`;
  } catch (error) {
    $("#status").textContent = "";
    showError(error, "#errors",
      error.code === "ADMIN_REQUIRED" ? "Only admins can see and manage API keys." : "");
  }
}

function wireCreate() {
  const form = $("#create-key");
  if (!form) return;
  $("#copy-key").addEventListener("click", async () => {
    const value = $("#new-key-value").value;
    try {
      await navigator.clipboard.writeText(value);
      $("#copy-status").textContent = "Copied to the clipboard.";
    } catch {
      $("#new-key-value").select();
      $("#copy-status").textContent = "Copying was refused; the key is selected, copy it by hand.";
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    const body = { displayName: $("#k-displayName").value.trim(), role: $("#k-role").value };
    const expires = $("#k-expiresAt").value;
    if (expires) body.expiresAt = new Date(expires).toISOString().replace(/\.\d{3}Z$/, "Z");
    busy(button, true);
    try {
      const created = (await api("POST", tenantPath("/apikeys"), {
        body, headers: { "Idempotency-Key": newIdempotencyKey() },
      })).data;
      $("#new-key-value").value = created.key;
      $("#copy-status").textContent = "";
      $("#new-key").hidden = false;
      $("#h-new-key").focus();
      form.reset();
      await load();
    } catch (error) {
      showFieldError(form, error);
    } finally {
      busy(button, false);
    }
  });
}

wireCreate();
load();
