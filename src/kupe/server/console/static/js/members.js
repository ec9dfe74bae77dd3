// Members: add, change role, remove; the last-admin rule explained when the server cites it.

import { api, tenantPath, newIdempotencyKey } from "./api.js";
import { $, h, announce, busy, clearErrors, showError, showFieldError } from "./ui.js";

const admin = document.body.dataset.role === "admin";
const LAST_ADMIN = "A tenant must always keep at least one admin: make another member an admin first, then change or remove this one.";

function explain(error) {
  return error.code === "LAST_ADMIN" ? LAST_ADMIN : "";
}

function memberPath(email) {
  return tenantPath(`/members/${encodeURIComponent(email)}`);
}

function actions(member) {
  const select = h("select", { "aria-label": `Role of ${member.email}` },
    ...["admin", "readonly"].map((role) => h("option", { value: role, selected: role === member.role }, role)));
  const save = h("button", { type: "button", "aria-label": `Change role of ${member.email}` }, "Change role");
  const remove = h("button", { type: "button", class: "destructive", "aria-label": `Remove ${member.email}` }, "Remove");
  save.addEventListener("click", async () => {
    busy(save, true);
    try {
      await api("PATCH", memberPath(member.email), { body: { role: select.value } });
      announce(`${member.email} is now ${select.value}`);
      await load();
    } catch (error) {
      showError(error, "#errors", explain(error));
      select.value = member.role;
      busy(save, false);
    }
  });
  remove.addEventListener("click", async () => {
    busy(remove, true);
    try {
      await api("DELETE", memberPath(member.email));
      announce(`${member.email} removed`);
      await load();
    } catch (error) {
      showError(error, "#errors", explain(error));
      busy(remove, false);
    }
  });
  return [
    h("td", { "data-label": "Role" }, select),
    h("td", { "data-label": "Actions" }, save, " ", remove),
  ];
}

async function load() {
  try {
    const items = (await api("GET", tenantPath("/members"))).data.items || [];
    $("#members tbody").replaceChildren(...items.map((member) => h("tr", { "data-email": member.email },
      h("th", { scope: "row", "data-label": "Email" }, member.email),
      admin ? actions(member) : h("td", { "data-label": "Role" }, member.role))));
    $("#members").hidden = items.length === 0;
    $("#status").textContent = items.length === 1 ? "1 member" : `${items.length} members`;
  } catch (error) {
    $("#status").textContent = "";
    showError(error);
  }
}

const form = $("#add-member");
form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const button = form.querySelector('button[type="submit"]');
  busy(button, true);
  try {
    const body = { email: $("#m-email").value.trim(), role: $("#m-role").value };
    await api("POST", tenantPath("/members"), { body, headers: { "Idempotency-Key": newIdempotencyKey() } });
    announce(`${body.email} added`);
    form.reset();
    await load();
  } catch (error) {
    showFieldError(form, error);
  } finally {
    busy(button, false);
  }
});

load();
