// Hearth web UI: who gets in (owner only). API tokens for machines (GET/POST/DELETE /api/tokens) and
// people's accounts (GET/POST/PATCH/DELETE /api/users), in the "Access" dialog.
//
// Same safety rule as app.js: names from the gateway reach the page only as text (textContent), never
// as markup. Requests go through HearthSession.fetch (session cookie + CSRF header).
"use strict";

window.HearthAccess = (() => {
  const $ = (id) => document.getElementById(id);
  // The words are the catalogue's (i18n.js), in the owner's language.
  const t = (key, values) => window.HearthI18n.t(key, values);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "translate") node.setAttribute("translate", value ? "yes" : "no");
      else node[key] = value;
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  function when(epochS) {
    if (epochS === null || epochS === undefined) return t("access.never");
    const locale = window.HearthI18n ? window.HearthI18n.locale() : undefined;
    return new Date(epochS * 1000).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
  }

  const call = (method, path, body) => window.HearthSession.call(method, path, body);

  function say(message, isError) {
    const out = $("access-error");
    out.textContent = message || "";
    out.hidden = !message;
    out.classList.toggle("error", !!isError);
  }

  function days(input) {
    const value = input.value.trim();
    return value === "" ? null : Number(value);
  }

  async function render() {
    say("");
    let tokens = [];
    let users = [];
    let contacts = [];
    try {
      let listed;
      [tokens, listed] = await Promise.all([
        call("GET", "/api/tokens").then((d) => d.tokens),
        call("GET", "/api/users"),
      ]);
      users = listed.users;
      contacts = listed.contacts || [];
    } catch (err) {
      say(err.message, true);
    }
    $("access-users").replaceChildren(...users.map((user) => el("li", { className: "access-row", "data-user": user.name },
      el("span", { className: "access-name", text: user.name, translate: false }),
      el("span", { className: "access-role", text: roleWord(user.role) }),
      el("span", { className: "muted", text: user.expires ? t("access.until", { when: when(user.expires) }) : "" }),
      languagePicker(user),
      contacts.length && user.role !== "resident" ? contactPicker(user, contacts) : null,
      el("button", { type: "button", className: "ghost", text: t("access.remove"),
                     "aria-label": t("access.remove_named", { name: user.name }),
                     onclick: () => remove(`/api/users/${encodeURIComponent(user.name)}`,
                                           t("access.removed_account", { name: user.name })) }))));
    $("access-tokens").replaceChildren(...tokens.map((token) => el("li", { className: "access-row", "data-token": token.id },
      el("span", { className: "access-name", text: token.name, translate: false }),
      el("span", { className: "access-role", text: roleWord(token.role) }),
      el("span", { className: "muted", text: token.expires
        ? t("access.last_used_until", { used: when(token.last_used), until: when(token.expires) })
        : t("access.last_used", { used: when(token.last_used) }) }),
      el("button", { type: "button", className: "ghost", text: t("access.revoke"),
                     "aria-label": t("access.revoke_named", { name: token.name }),
                     onclick: () => remove(`/api/tokens/${encodeURIComponent(token.id)}`,
                                           t("access.removed_token", { name: token.name })) }))));
  }

  function roleWord(role) {
    const text = t(`role.${role}`);
    return text === `role.${role}` ? role : text;
  }

  // The language of a person's pages: the resident's page has no settings, so the family sets hers here.
  function languagePicker(user) {
    const languages = window.HearthI18n ? window.HearthI18n.languages() : [];
    const picker = el("select", { className: "access-language" },
      el("option", { value: "", text: t("access.browser_language") }),
      languages.map((l) => el("option", { value: l.tag, text: l.name })));
    picker.setAttribute("aria-label", t("access.language_of", { name: user.name }));
    picker.value = user.language || "";
    picker.addEventListener("change", async () => {
      try {
        await call("PATCH", `/api/users/${encodeURIComponent(user.name)}`, { language: picker.value || null });
        say(picker.value ? t("access.language_set", { name: user.name, language: picker.selectedOptions[0].text })
          : t("access.language_browser", { name: user.name }));
      } catch (err) {
        say(err.message, true);
        picker.value = user.language || "";
      }
    });
    return picker;
  }

  // The notification contact ([notify.<name>] of the config) this person is: they then set its quiet hours
  // and channels themselves ("My notifications").
  function contactPicker(user, contacts) {
    const picker = el("select", { className: "access-contact" },
      el("option", { value: "", text: t("access.no_contact") }),
      contacts.map((name) => el("option", { value: name, text: name, translate: false })));
    picker.setAttribute("aria-label", t("access.contact_of", { name: user.name }));
    picker.value = user.contact || "";
    picker.addEventListener("change", async () => {
      try {
        await call("PATCH", `/api/users/${encodeURIComponent(user.name)}`, { contact: picker.value || null });
        say(picker.value ? t("access.contact_set", { name: user.name, contact: picker.value })
          : t("access.contact_none", { name: user.name }));
      } catch (err) {
        say(err.message, true);
        picker.value = user.contact || "";
      }
    });
    return picker;
  }

  // `done`: what to say once it is removed ("Removed Carl's account.").
  async function remove(path, done) {
    try {
      await call("DELETE", path);
      say(done);
      await render();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function addToken(event) {
    event.preventDefault();
    $("access-new-token").hidden = true;
    try {
      const made = await call("POST", "/api/tokens", {
        name: $("token-name").value.trim(), role: $("token-role").value, expires_in_days: days($("token-days")),
      });
      $("token-name").value = "";
      // Shown once: the gateway keeps only its hash.
      $("access-new-token-value").textContent = made.token;
      $("access-new-token").hidden = false;
      await render();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function addUser(event) {
    event.preventDefault();
    try {
      await call("POST", "/api/users", {
        username: $("user-name").value.trim(), password: $("user-password").value, role: $("user-role").value,
        expires_in_days: days($("user-days")),
      });
      $("user-name").value = "";
      $("user-password").value = "";
      await render();
    } catch (err) {
      say(err.message, true);
    }
  }

  // ----- personal data (ETSI EN 303 645 5.11): a copy of everything, the history deleted, who did what

  async function exportData() {
    say("");
    try {
      const response = await window.HearthSession.fetch("/api/data/export", { method: "GET", headers: {} });
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        throw new Error((data && data.error) || `HTTP ${response.status}`);
      }
      const disposition = response.headers.get("Content-Disposition") || "";
      const file = (disposition.match(/filename="([^"]+)"/) || [])[1] || "hearth-data.zip";
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: file });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      say(t("data.exported", { file }));
      await renderAudit();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function deleteHistory(event) {
    event.preventDefault();
    try {
      const answer = await call("POST", "/api/data/delete",
                                { scope: "history", confirm: $("data-delete-confirm").value.trim() });
      $("data-delete-confirm").value = "";
      const counts = Object.entries(answer.deleted || {}).filter(([, n]) => n).map(([k, n]) => `${k.replaceAll("_", " ")} ${n}`);
      say(counts.length ? t("data.deleted", { counts: counts.join(", ") }) : t("data.nothing_deleted"));
      await renderAudit();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function renderAudit() {
    const list = $("data-audit-list");
    try {
      const { entries } = await call("GET", "/api/audit?limit=20");
      list.replaceChildren(...(entries.length ? entries.map((e) => el("li", { className: "access-row" },
        el("span", { className: "muted", text: when(e.t) }),
        el("span", { className: "access-name", text: e.action, translate: false }),
        el("span", { text: e.target || "", translate: false }),
        el("span", { className: "muted", text: e.actor ? `${e.actor}${e.role ? ` (${roleWord(e.role)})` : ""}` : "",
                     translate: false })))
        : [el("li", { className: "muted", text: t("data.audit_empty") })]));
    } catch (err) {
      list.replaceChildren(el("li", { className: "error", text: err.message }));
    }
  }

  function open() {
    $("access-new-token").hidden = true;
    $("access-dialog").showModal();
    render();
    if ($("data-audit").open) renderAudit();
  }

  function init() {
    $("access-open").addEventListener("click", open);
    $("access-close").addEventListener("click", () => $("access-dialog").close());
    $("token-form").addEventListener("submit", addToken);
    $("user-form").addEventListener("submit", addUser);
    $("data-export").addEventListener("click", exportData);
    $("data-delete-form").addEventListener("submit", deleteHistory);
    $("data-audit").addEventListener("toggle", () => { if ($("data-audit").open) renderAudit(); });
  }

  document.addEventListener("DOMContentLoaded", init);
  return { open, render };
})();
