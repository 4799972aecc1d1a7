// The resident page: "I'm fine", "Call for help", today's reminders, who was told what.
// No framework, no build step; text goes in through textContent only (names come from the config).
"use strict";

(() => {
  const TOKEN_KEY = "hearth.token"; // the same key as the main UI: a tablet set up there works here
  // How often the page asks the house again: the lists change a few times a day, the clock every minute.
  const REFRESH_MS = 15000;
  // A first tap on "Call for help" arms it for this long; a second tap within it calls.
  const ARM_MS = 6000;

  const $ = (id) => document.getElementById(id);
  const i18n = window.HearthI18n;
  const t = i18n.t;
  const state = { token: null, armed: null, refreshTimer: null, busy: false };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  // A browser session (cookie) is the way in where there are accounts; its state-changing requests send
  // the readable CSRF cookie back as a header (double submit). A stored API token is the other way.
  const CSRF_COOKIE = "hearth_csrf";

  function csrfToken() {
    for (const part of document.cookie.split(";")) {
      const [name, ...value] = part.trim().split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
    }
    return "";
  }

  async function api(method, path) {
    const headers = {};
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (method !== "GET" && csrfToken()) headers["X-CSRF-Token"] = csrfToken();
    const response = await fetch(path, { method, headers, cache: "no-store", credentials: "same-origin" });
    const type = response.headers.get("Content-Type") || "";
    const data = type.startsWith("application/json") ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // ------------------------------------------------------------------ words

  function contact(name) {
    const text = String(name).replace(/[_-]+/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function joinNames(names) {
    return i18n.list(names.map(contact));
  }

  function say(text) {
    $("status").textContent = text;
  }

  // ------------------------------------------------------------------ render

  async function render(data) {
    // The language the gateway answered in: the resident's own (set by the family), else this browser's.
    if (data.language && data.language !== i18n.locale()) await i18n.use(data.language);
    $("offline").hidden = true;
    $("clock").textContent = data.time;
    const day = new Date(`${data.date}T12:00:00Z`);
    // The gateway's date (the house's day, not the tablet's), written as the language writes dates.
    $("today").textContent = i18n.date(day, { weekday: "long", day: "numeric", month: "long", timeZone: "UTC" });

    const reminders = $("reminders");
    reminders.replaceChildren(...data.reminders.map((r) => item(r.when, r.text, null, r.past)));
    $("reminders-empty").hidden = data.reminders.length > 0;

    const told = $("told");
    told.replaceChildren(...data.told.map((n) => item(n.time, n.text, n.note, false)));
    $("told-empty").hidden = data.told.length > 0;

    const open = data.help && data.help.open;
    const banner = $("help-open");
    if (open) {
      const since = open.raised_at ? timeOf(data, open.raised_at) : "";
      banner.textContent = open.state === "acknowledged"
        ? seenBy(open.acknowledged_by)
        : (since ? t("resident.help_called_at", { time: since }) : t("resident.help_called"));
    }
    banner.hidden = !open;
    const configured = !(data.help && data.help.configured === false);
    $("help").disabled = state.busy || !configured;
    if (!configured) $("help-hint").textContent = t("resident.help_not_set_up");
    else if (!state.armed) $("help-hint").textContent = t("resident.help_hint");
  }

  function seenBy(who) {
    // A person's name reads well ("Anna has seen ..."); a machine token's name ("initial") does not.
    const name = String(who || "");
    if (!name || name.startsWith("token:")) return t("resident.help_seen");
    return t("resident.help_seen_by", { name: contact(name.replace(/^[a-z]+:/, "")) });
  }

  function timeOf(data, iso) {
    const found = data.told.find((n) => n.t === iso);
    if (found) return found.time;
    // Not in the list (yet): the difference to the answer's "now", applied to its HH:MM.
    const delta = Math.round((Date.parse(iso) - Date.parse(data.now)) / 60000);
    const [h, m] = data.time.split(":").map(Number);
    const minutes = (((h * 60 + m + delta) % 1440) + 1440) % 1440;
    return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
  }

  function item(time, text, note, past) {
    const li = document.createElement("li");
    if (past) li.className = "past";
    const when = document.createElement("time");
    when.textContent = time;
    const what = document.createElement("span");
    what.className = "text";
    what.textContent = text;
    if (note) {
      const small = document.createElement("span");
      small.className = "note";
      small.textContent = note.charAt(0).toUpperCase() + note.slice(1);
      what.append(small);
    }
    li.append(when, what);
    return li;
  }

  async function refresh() {
    try {
      const data = await api("GET", "/api/resident");
      state.last = data;
      await render(data);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        showSetup();
        return;
      }
      $("offline").hidden = false;
    }
  }

  // ------------------------------------------------------------------ I'm fine

  async function checkIn() {
    const button = $("fine");
    button.disabled = true;
    say("…");
    try {
      const { check_in: done } = await api("POST", "/api/resident/check-in");
      say(done.told.length
        ? t(done.told.length > 1 ? "resident.thanks_told" : "resident.thanks_told_one", { names: joinNames(done.told) })
        : t("resident.thanks_noted"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return showSetup();
      say(t("resident.failed"));
    } finally {
      button.disabled = false;
    }
    await refresh();
  }

  // ------------------------------------------------------------------ call for help

  function disarm() {
    clearTimeout(state.armed);
    state.armed = null;
    const button = $("help");
    button.classList.remove("armed");
    button.textContent = t("resident.help");
    $("help-hint").textContent = t("resident.help_hint");
    $("help-cancel").hidden = true;
  }

  function arm() {
    const button = $("help");
    button.classList.add("armed");
    button.textContent = t("resident.help_again");
    $("help-hint").textContent = t("resident.help_again_hint");
    $("help-cancel").hidden = false;
    say(t("resident.help_again_status"));
    state.armed = setTimeout(() => {
      disarm();
      say("");
    }, ARM_MS);
  }

  async function helpTapped() {
    if (state.busy) return;
    if (!state.armed) {
      arm();
      return;
    }
    disarm();
    state.busy = true;
    $("help").disabled = true;
    say(t("resident.calling"));
    try {
      const called = await api("POST", "/api/resident/help");
      const told = (called.alert.notifications || []).map((n) => n.target);
      say(told.length ? t("resident.help_is_called_told", { names: joinNames([...new Set(told)]) })
        : t("resident.help_is_called"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return showSetup();
      say(err instanceof ApiError && err.status === 409
        ? t("resident.help_not_here")
        : t("resident.help_failed"));
    } finally {
      state.busy = false;
      $("help").disabled = false;
    }
    await refresh();
  }

  function cancelHelp() {
    disarm();
    say(t("resident.not_called"));
    $("help").focus();
  }

  // ------------------------------------------------------------------ set-up

  function showSetup(message) {
    clearInterval(state.refreshTimer);
    $("resident").hidden = true;
    $("setup").hidden = false;
    const error = $("setup-error");
    error.hidden = !message;
    error.textContent = message || "";
  }

  async function setUp(event) {
    event.preventDefault();
    // A name and a password (an account), or, with no name, an API token in the password field.
    const username = $("setup-name").value.trim();
    const secret = $("setup-token").value.trim();
    const body = username ? { username, password: secret, remember: true } : { token: secret };
    try {
      const response = await fetch("/api/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        cache: "no-store", credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok || !data.ok) {
        throw new Error(t(username ? "resident.setup_wrong_password" : "resident.setup_bad_token"));
      }
      // A session cookie came with it: nothing to keep here. Otherwise the token is the way in.
      if (!username && !csrfToken()) {
        localStorage.setItem(TOKEN_KEY, secret);
        state.token = secret;
      }
      $("setup-token").value = "";
      start();
    } catch (err) {
      showSetup(err.message);
    }
  }

  function start() {
    $("setup").hidden = true;
    $("resident").hidden = false;
    refresh();
    clearInterval(state.refreshTimer);
    state.refreshTimer = setInterval(refresh, REFRESH_MS);
  }

  function init() {
    // A set-up link (#token=...) as `hearth demo` prints for the main UI: the fragment never reaches
    // the server, and is taken out of the address at once.
    const fromLink = (location.hash.match(/^#token=([\w-]+)$/) || [])[1];
    if (fromLink) {
      localStorage.setItem(TOKEN_KEY, fromLink);
      history.replaceState(null, "", location.pathname + location.search);
    }
    state.token = localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY);
    $("fine").addEventListener("click", checkIn);
    $("help").addEventListener("click", helpTapped);
    $("help-cancel").addEventListener("click", cancelHelp);
    $("setup-form").addEventListener("submit", setUp);
    // Without a stored token the page still asks: a browser session (cookie) may be enough. The
    // browser's language first; the gateway's answer says the resident's own, if the family set one.
    i18n.use(i18n.browserLanguage()).finally(start);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
  }

  init();
})();
