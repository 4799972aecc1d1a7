// Hearth web UI: the browser session. Logging in (name and password, or an API token), logging out,
// the first-start owner account, and fetch() with the session's CSRF header.
//
// The session itself is an HttpOnly cookie this script never sees (so an injected script cannot carry
// it away). State-changing requests (POST, PUT, PATCH, DELETE) send the value of the readable
// `hearth_csrf` cookie back as the X-CSRF-Token header: a page of another site can make the browser send
// our cookies, but it cannot read them, so it cannot send that header (double-submit cookie).
"use strict";

window.HearthSession = (() => {
  const CSRF_COOKIE = "hearth_csrf";
  const CSRF_HEADER = "X-CSRF-Token";
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  function csrfToken() {
    for (const part of document.cookie.split(";")) {
      const [name, ...value] = part.trim().split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
    }
    return "";
  }

  // fetch() for the gateway's API: same-origin cookies, never cached, the CSRF header when it matters.
  function request(path, init = {}) {
    const method = (init.method || "GET").toUpperCase();
    const headers = new Headers(init.headers || {});
    if (UNSAFE.has(method)) {
      const token = csrfToken();
      if (token) headers.set(CSRF_HEADER, token);
    }
    return fetch(path, { cache: "no-store", ...init, method, headers, credentials: "same-origin" });
  }

  // A JSON call of the API: its answer, or an Error saying why in the reader's words (the catalogue's
  // "error.<reason>": "error.exists", the name is taken), else the gateway's own message.
  async function call(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await request(path, init);
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const key = `error.${data && data.reason}`;
      const text = data && data.reason && window.HearthI18n ? window.HearthI18n.t(key) : key;
      throw new Error(text !== key ? text : (data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  async function postJson(path, body) {
    const response = await request(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    return { response, data };
  }

  // The words in the reader's language (i18n.js), or English where it is not loaded.
  function say(key, english, values) {
    const i18n = window.HearthI18n;
    const text = i18n ? i18n.t(key, values) : key;
    return text === key ? english : text;
  }

  function failure(response, data, fallback) {
    if (response.status === 429) {
      const seconds = response.headers.get("Retry-After") || 60;
      return new Error(say("login.too_many", `Too many failed attempts. Try again in ${seconds} s.`, { seconds }));
    }
    return new Error((data && data.error && response.status !== 401) ? data.error : fallback);
  }

  // Each resolves to who is logged in now ({name, role, kind, ...}) or throws an Error to show.
  async function login(username, password, remember) {
    const { response, data } = await postJson("/api/login", { username, password, remember: !!remember });
    if (!response.ok || !data.ok) throw failure(response, data, say("login.wrong_password", "Wrong name or password."));
    return data;
  }

  async function loginWithToken(token, remember) {
    const { response, data } = await postJson("/api/login", { token, remember: !!remember });
    if (!response.ok || !data.ok) {
      throw failure(response, data, say("login.bad_token", "That token is not valid (or was revoked)."));
    }
    return data;
  }

  async function createOwner(username, password) {
    const { response, data } = await postJson("/api/setup/owner", { username, password });
    if (!response.ok || !data.ok) throw failure(response, data, say("setup.failed", "The owner account could not be made."));
    return data;
  }

  async function logout() {
    try { await request("/api/logout", { method: "POST" }); } catch { /* offline: the cookie expires anyway */ }
  }

  // Who the session cookie belongs to, or null (no session, or it ended).
  async function me() {
    const response = await request("/api/me");
    if (!response.ok) return null;
    return response.json();
  }

  // {owner_exists, can_create_owner}: the login page offers to create the owner only while none exists
  // and only on the gateway's own machine (the server decides both).
  async function setup() {
    try {
      const response = await request("/api/setup");
      return response.ok ? response.json() : { owner_exists: true, can_create_owner: false };
    } catch {
      return { owner_exists: true, can_create_owner: false };
    }
  }

  return { fetch: request, call, csrfToken, login, loginWithToken, createOwner, logout, me, setup };
})();
