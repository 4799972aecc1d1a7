// Hearth web UI: plain JavaScript, no build step, nothing from other origins.
//
// Safety rule for this file: every string that comes from the gateway (device names, areas, tags,
// alert texts, scene traces, discovery records) is untrusted and reaches the page only as text:
// through el()/text nodes/textContent, never parsed as markup. (The tests check that this file uses
// none of the DOM's HTML-parsing setters at all.)
"use strict";

(() => {
  const TOKEN_KEY = "hearth.token";
  const EVENT_KINDS = ["state", "availability", "devices", "alerts", "scenes", "mode", "occupancy"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  // The house page builds this many tiles at once (a screenful and more), the others in slices of at most
  // FILL_SLICE_MS between frames: no long task of the main thread for a house of 1,000 devices.
  const TILES_AT_ONCE = 48;
  const FILL_SLICE_MS = 30;

  const state = {
    token: null,
    me: null,
    devices: new Map(), // id -> device (GET /api/devices shape)
    areaNames: new Map(), // area -> the name shown for it (GET /api/areas): "Living room" for living_room
    areasEditable: false,
    // The gateway's clock minus the browser's, in seconds, from the times its events and answers carry: in
    // `hearth demo` the house lives a simulated day ("yesterday" and "today" are the house's, not the browser's).
    clockSkew: 0,
    alerts: new Map(), // id -> alert
    scenes: new Map(), // id -> scene summary
    mode: "home",
    house: null, // GET /api/house shape (mode, occupancy, since, reason, history); null without scenes
    ws: null,
    wsRetry: 0,
    nextId: 1,
    pending: new Map(), // WS message id -> {resolve}
    page: "house",
    tiles: new Map(), // device id -> tile element
    fill: { ids: [], next: 0, run: 0 }, // the tiles renderHouse left to fill, a slice at a time
    busy: new Set(), // device ids whose slider is being dragged: not redrawn under the finger
    openTraces: new Set(),
    showResolved: false, // the resolved alerts' list is unfolded
    resolving: null, // the alert id the resolve dialog is for
    // Ids changed by WebSocket events while a GET of the same list is in flight: the GET's answer may
    // be older than the event, so for these the event wins.
    watchers: { alerts: new Set(), scenes: new Set(), mode: new Set() },
  };

  function watch(kind) {
    const changed = new Set();
    state.watchers[kind].add(changed);
    return { changed, done: () => state.watchers[kind].delete(changed) };
  }

  function touched(kind, id) {
    for (const changed of state.watchers[kind]) changed.add(id);
  }

  // The list from a GET, with what events changed meanwhile kept from the current one.
  function merge(fetched, current, changed) {
    for (const id of changed) {
      if (current.has(id)) fetched.set(id, current.get(id));
    }
    return fetched;
  }

  // ------------------------------------------------------------------ DOM helpers

  const $ = (id) => document.getElementById(id);
  const i18n = window.HearthI18n;
  const t = i18n.t;

  // el("div", {className: "x", dataset: {id}, onclick: fn}, child, "text", ...): children that are
  // strings or numbers become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    applyProps(node, props);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    append(node, children);
    return node;
  }

  function applyProps(node, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = String(v);
      else if (k in node && k !== "list") node[k] = v;
      else node.setAttribute(k, String(v));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function toast(message, isError) {
    const box = $("toast");
    box.textContent = message;
    box.classList.toggle("error", Boolean(isError));
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 2500);
  }

  function fmtTime(value) {
    if (value === null || value === undefined) return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return i18n.date(date, { dateStyle: "short", timeStyle: "short" });
  }

  // A day and a time as people say them: {day: null (today) | "yesterday" | "Mar 8", time: "10:01"}.
  function dayAndTime(value) {
    if (value === null || value === undefined) return null;
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return null;
    const now = new Date(gatewayNow() * 1000);
    const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
    const daysAgo = Math.round((midnight(now) - midnight(date)) / 86400000);
    const time = i18n.date(date, { timeStyle: "short" });
    let day = null;
    if (daysAgo === 1) day = "yesterday";
    else if (daysAgo !== 0) {
      day = i18n.date(date, date.getFullYear() === now.getFullYear()
        ? { month: "short", day: "numeric" } : { dateStyle: "medium" });
    }
    return { day, time };
  }

  // "10:01", "yesterday 10:01", "Mar 8 10:01": after "since".
  function fmtSince(value) {
    const when = dayAndTime(value);
    if (!when) return "";
    if (!when.day) return when.time;
    return when.day === "yesterday" ? t("time.yesterday_time", { time: when.time })
      : t("time.day_time", { day: when.day, time: when.time });
  }

  // "at 10:01", "yesterday at 10:01", "on Mar 8 at 10:01".
  function fmtAt(value) {
    const when = dayAndTime(value);
    if (!when) return "";
    if (!when.day) return t("time.at", { time: when.time });
    return when.day === "yesterday" ? t("time.yesterday_at", { time: when.time })
      : t("time.on_day_at", { day: when.day, time: when.time });
  }

  // The engine's reasons are lower-case phrases ("movement in kitchen/motion (kitchen)"); shown as sentences.
  function sentence(text) {
    if (!text) return "";
    const value = String(text);
    return value.charAt(0).toUpperCase() + value.slice(1);
  }

  // ["a"] -> "a", ["a", "b", "c"] -> "a, b and c".
  function joinNames(names) {
    return i18n.list(names);
  }

  // A catalogue text with elements in its placeholders: textWith("area.explain", {area: <code>}) -> [text, <code>, text].
  function textWith(key, nodes) {
    return t(key).split(/\{(\w+)\}/).map((part, i) => (i % 2 ? nodes[part] || `{${part}}` : part)).filter((p) => p !== "");
  }

  function fmtNumber(value, digits) {
    if (typeof value !== "number") return String(value);
    return i18n.number(value, { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  // ------------------------------------------------------------------ HTTP

  // The gateway's answer to a refused request in words: the catalogue's for the reasons it knows
  // ("error.<reason>": forbidden_role, csrf, exists, unavailable), else the gateway's own message.
  function refusal(body, fallback) {
    const reason = body && body.reason;
    const key = `error.${reason}`;
    const text = reason ? t(key) : key;
    return text !== key ? text : (body && (body.error || body.message)) || fallback;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(refusal(body, `HTTP ${status}`));
      this.status = status;
      this.body = body;
    }
  }

  // Every API call goes through the session's fetch (session.js): its cookie, and the CSRF header on
  // state-changing requests.
  async function api(method, path, body) {
    const headers = {};
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await window.HearthSession.fetch(path, init);
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("application/json")) data = await response.json();
    if (response.status === 401) {
      logout(t("top.session_ended"));
      throw new ApiError(401, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // ------------------------------------------------------------------ login

  // A token an older version of this page kept in storage: traded once for a session, then forgotten
  // (the session cookie is HttpOnly; a token in storage is readable by any script on the page).
  function storedToken() {
    return localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY);
  }

  function forgetStoredToken() {
    localStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("login-username").focus();
    // Over HTTPS (the API beyond loopback): how to check the gateway's own certificate before a password.
    $("login-certificate").hidden = window.location.protocol !== "https:";
    // The owner account can be made here only while none exists, and only on the gateway's machine.
    window.HearthSession.setup().then((setup) => {
      $("setup-form").hidden = !setup.can_create_owner;
      if (setup.can_create_owner) $("setup-username").focus();
    });
  }

  // Who is logged in ({name, role, kind}); the page shows the role and hides what it may not do.
  // The server refuses it anyway: this only spares the person buttons that cannot work.
  const ROLE_PAGES = {
    owner: null, // everything
    caregiver: ["house", "alerts", "scenes", "energy"],
    installer: ["house", "scenes", "energy", "discovered"],
  };
  // What each role may change (gateway/api/accounts.py ROUTE_ROLES): devices, areas and scenes (commands,
  // names, enabling, running) are for those who configure; a caregiver sees them and handles the alerts.
  const CONFIGURERS = new Set(["owner", "installer"]);

  function mayConfigure() {
    return Boolean(state.me && CONFIGURERS.has(state.me.role));
  }

  // The person's language (their choice, else the browser's), and the picker to change it.
  async function useLanguage(me) {
    await i18n.use(me.language || i18n.browserLanguage(), me.languages);
    const picker = $("language-select");
    picker.replaceChildren(...(me.languages || []).map((l) => el("option", { value: l.tag, text: l.name })));
    picker.value = i18n.locale();
    // Only a person has settings of their own; an API token's session follows the browser.
    picker.hidden = me.kind !== "user" || !(me.languages || []).length;
  }

  async function chooseLanguage(event) {
    try {
      const me = await api("PATCH", "/api/me", { language: event.target.value });
      state.me = { ...state.me, ...me };
      await useLanguage(state.me);
      // Everything drawn with words is drawn again in the new language.
      $("whoami").textContent = `${state.me.name} (${t(`role.${state.me.role}`)})`;
      setConn(state.ws && state.ws.readyState === WebSocket.OPEN ? t("top.live") : t("top.connecting"),
        $("conn").className.replace(/^conn\s*/, ""));
      renderOccupancy();
      renderAlerts();
      renderHouse();
      route();
      toast(t("language.saved"));
    } catch (err) {
      toast(err.message, true);
      event.target.value = i18n.locale();
    }
  }

  async function loggedIn(me) {
    if (me.role === "resident") { location.assign("/resident"); return false; }
    // A login's answer does not list the languages: ask who we are (it does).
    if (!me.languages) me = { ...me, ...(await window.HearthSession.me()) };
    await useLanguage(me);
    state.me = me;
    $("whoami").textContent = `${me.name} (${t(`role.${me.role}`)})`;
    document.body.dataset.role = me.role;
    const pages = ROLE_PAGES[me.role];
    for (const link of document.querySelectorAll("nav.tabs a[data-page]")) {
      link.hidden = pages !== null && pages !== undefined && !pages.includes(link.dataset.page);
    }
    $("mode-select").disabled = me.role !== "owner";
    $("access-open").hidden = me.role !== "owner";
    // A person told of alerts sets their own quiet hours and channels (not a machine's token).
    $("mynotify-open").hidden = me.kind !== "user" || !["owner", "caregiver"].includes(me.role);
    return true;
  }

  async function login(username, password, remember) {
    return await loggedIn(await window.HearthSession.login(username, password, remember));
  }

  async function loginWithToken(token, remember) {
    return await loggedIn(await window.HearthSession.loginWithToken(token, remember));
  }

  function logout(message) {
    forgetStoredToken();
    if (state.me) window.HearthSession.logout();
    state.me = null;
    state.token = null;
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close(1000);
      state.ws = null;
    }
    showLogin(message);
  }

  // ------------------------------------------------------------------ WebSocket

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/ws`);
    state.ws = ws;
    setConn(t("top.connecting"), "");
    // No auth message: the session cookie goes with the upgrade request, and the server answers auth_ok.
    ws.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      onMessage(data);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      for (const pending of state.pending.values()) pending.resolve({ ok: false, error: t("common.connection_lost") });
      state.pending.clear();
      if (event.code === 4401 || event.code === 4403) { logout(t("top.session_ended")); return; }
      // Back off: 1 s, 2 s, 4 s … at most 30 s. A slow-client drop (4008) reconnects the same way
      // and takes a fresh snapshot.
      const delay = Math.min(30000, 1000 * 2 ** state.wsRetry);
      state.wsRetry += 1;
      setConn(event.code === 4429 ? t("top.too_many_waiting") : t("top.reconnecting"), "down");
      setTimeout(() => { if (state.me && !state.ws) connect(); }, delay);
    };
  }

  function setConn(text, cls) {
    const conn = $("conn");
    conn.textContent = text;
    conn.className = `conn ${cls}`;
  }

  function send(message) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ ok: false, error: t("common.not_connected") });
    }
    const id = state.nextId++;
    return new Promise((resolve) => {
      state.pending.set(id, { resolve });
      state.ws.send(JSON.stringify({ ...message, id }));
    });
  }

  function onMessage(data) {
    if (data.type === "auth_ok") {
      state.wsRetry = 0;
      setConn(t("top.live"), "live");
      send({ type: "subscribe", events: EVENT_KINDS, snapshot: true }).then((result) => {
        if (!result.ok) return;
        state.devices = new Map(result.devices.map((d) => [d.id, d]));
        // The house (mode, who is home) comes with the snapshot when scenes run; none without them.
        state.house = result.house || null;
        if (state.house) {
          state.mode = state.house.mode;
          $("mode-select").value = state.house.mode;
        }
        renderOccupancy();
        renderHouse();
        loadAreas();
        refreshAlerts();
        refreshScenes();
        // Opened at /#/energy, the page may have drawn before the devices were known ("no device measures
        // power"): draw it again now that they are.
        if (state.page === "energy") renderEnergy();
      });
      return;
    }
    if (data.type === "result" && state.pending.has(data.id)) {
      const pending = state.pending.get(data.id);
      state.pending.delete(data.id);
      pending.resolve(data);
      return;
    }
    if (data.type === "event") onEvent(data);
  }

  // The gateway's time now, as far as the browser can tell.
  function gatewayNow() {
    return Date.now() / 1000 + state.clockSkew;
  }

  function heardTime(t) {
    if (typeof t !== "number" || !Number.isFinite(t)) return;
    const skew = t - Date.now() / 1000;
    const moved = Math.abs(skew - state.clockSkew) > 60;
    state.clockSkew = skew;
    // "since 06:54" or "since yesterday 06:54": the house's day, once the page knows it.
    if (moved) renderOccupancy();
  }

  function onEvent(event) {
    heardTime(event.t);
    switch (event.event) {
      case "state": {
        const device = state.devices.get(event.device);
        if (!device) return;
        const comp = (device.components[event.component] ||= {});
        const cap = (comp[event.capability] ||= {});
        cap[event.attribute] = event.value;
        updateTile(device);
        break;
      }
      case "availability": {
        const device = state.devices.get(event.device);
        if (!device) return;
        device.available = event.available;
        updateTile(device);
        break;
      }
      case "devices": {
        const old = state.devices.get(event.device);
        if (event.change === "removed") state.devices.delete(event.device);
        else state.devices.set(event.device, event.data);
        const layoutChanged = !old || event.change === "removed" || old.area !== event.data.area
          || old.name !== event.data.name;
        if (layoutChanged) renderHouse();
        else updateTile(event.data);
        break;
      }
      case "alerts":
        touched("alerts", event.alert.id);
        state.alerts.set(event.alert.id, event.alert);
        renderAlerts();
        break;
      case "scenes":
        touched("scenes", event.scene);
        if (event.state) state.scenes.set(event.scene, event.state);
        renderScenes();
        if (state.openTraces.has(event.scene)) loadTraces(event.scene);
        break;
      case "mode":
        touched("mode", "mode");
        state.mode = event.mode;
        if (state.house) state.house.mode = event.mode;
        $("mode-select").value = event.mode;
        break;
      case "occupancy": {
        const house = state.house || { mode: state.mode, history: [] };
        house.occupancy = event.occupancy;
        house.since = event.since;
        house.reason = event.reason;
        house.history = [{ t: event.since, state: event.occupancy, reason: event.reason },
          ...(house.history || [])].slice(0, 20);
        state.house = house;
        renderOccupancy();
        break;
      }
      default:
        break;
    }
  }

  async function command(device, component, capability, name, args) {
    const result = await send({ type: "command", device: device.id, component, capability, command: name,
                                args: args || {} });
    if (!result.ok) {
      toast(t("house.command_failed", { name: shownName(device),
                                        error: refusal(result, t("house.command_failed_plain")) }), true);
    } else if (result.status === "timeout") {
      toast(t("house.not_confirmed", { name: shownName(device) }), true);
    }
    return result;
  }

  // ------------------------------------------------------------------ routing

  const PAGES = ["house", "alerts", "scenes", "energy", "discovered"];

  function route() {
    const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
    state.page = PAGES.includes(name) ? name : "house";
    for (const page of PAGES) $(`page-${page}`).hidden = page !== state.page;
    for (const link of document.querySelectorAll(".tabs a")) {
      if (link.dataset.page === state.page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (state.page === "alerts") refreshAlerts();
    if (state.page === "scenes") refreshScenes();
    if (state.page === "energy") renderEnergy();
    if (state.page === "discovered") { renderDiscovered(); renderMatter(); }
  }

  // ------------------------------------------------------------------ who is home

  const OCCUPANCY_STATES = ["home", "away", "unknown"];

  // The engine gives its reasons as English phrases ("movement in Hall motion (hall)"); the ones it is known
  // to write are said again from the catalogue, with the names and times they carry. One it is not known to
  // write is shown as it came.
  const OCCUPANCY_REASONS = [
    [/^nothing seen yet$/, "occupancy.reason.nothing_yet", []],
    [/^movement in (.+) \(([^()]+)\)$/, "occupancy.reason.movement_in_area", ["name", "area"]],
    [/^movement in (.+)$/, "occupancy.reason.movement", ["name"]],
    [/^every presence tag is away \(last: (.+)\)$/, "occupancy.reason.tags_away", ["name"]],
    [/^(.+) is present$/, "occupancy.reason.present", ["name"]],
    [/^(.+) closed at (\d{1,2}:\d{2}) and no movement inside for (?:(\d+) h)? ?(?:(\d+) min)?$/,
      "occupancy.reason.door_closed", ["door", "time", "hours", "minutes"]],
    [/^house mode set to (\w+) \((.+)\)$/, "occupancy.reason.mode", ["mode", "source"]],
  ];

  function occupancyReason(reason) {
    if (!reason) return "";
    const text = String(reason);
    for (const [pattern, key, names] of OCCUPANCY_REASONS) {
      const found = text.match(pattern);
      if (!found) continue;
      const values = Object.fromEntries(names.map((name, i) => [name, found[i + 1] ?? ""]));
      if ("area" in values) values.area = areaName(values.area);
      if (key === "occupancy.reason.door_closed") {
        if (values.door === "the entrance door") values.door = t("occupancy.entrance_door");
        values.duration = durationText(Number(values.hours || 0) * 3600 + Number(values.minutes || 0) * 60);
      }
      if (key === "occupancy.reason.mode") {
        values.mode = t(`mode.${values.mode}`);
        values.source = values.source === "api" ? t("occupancy.by_hand") : values.source.startsWith("scene:")
          ? who(values.source) : values.source;
      }
      return sentence(t(key, values));
    }
    return sentence(text);
  }

  // "1 h 30 min", "45 min": a duration as the catalogue writes it.
  function durationText(seconds) {
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    if (hours && minutes) return t("duration.hours_minutes", { hours, minutes });
    if (hours) return t("duration.hours", { hours });
    return t("duration.minutes", { minutes });
  }

  function renderOccupancy() {
    const box = $("occupancy");
    const house = state.house;
    if (!house || !house.occupancy) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.dataset.occupancy = house.occupancy;
    $("occupancy-state").textContent = OCCUPANCY_STATES.includes(house.occupancy)
      ? t(`occupancy.${house.occupancy}`) : house.occupancy;
    const since = $("occupancy-since");
    since.textContent = house.since ? t("occupancy.since", { when: fmtSince(house.since) }) : "";
    since.title = house.since ? fmtTime(house.since) : "";
    $("occupancy-reason").textContent = occupancyReason(house.reason);
    // The history starts with the current state (when it changed since the gateway started).
    const earlier = (house.history || []).filter((h) => !(h.t === house.since && h.state === house.occupancy))
      .slice(0, 5);
    $("occupancy-history").replaceChildren(...(earlier.length
      ? earlier.map((h) => el("li", {}, el("span", { className: "when", text: fmtSince(h.t), title: fmtTime(h.t) }),
        ` · ${OCCUPANCY_STATES.includes(h.state) ? t(`occupancy.short.${h.state}`) : h.state}`
        + ` · ${occupancyReason(h.reason)}`))
      : [el("li", { className: "muted", text: t("occupancy.no_earlier") })]));
  }

  // ------------------------------------------------------------------ house

  // ----- the one label table

  // Every attribute the UI shows, by "capability.attribute": its label, its unit, words for true/false
  // ([true, false]) or for enum values, and whether a true value is an alarm (shown in red) or worth
  // knowing (amber). Readings, the energy page and the scene pages all take their words from here.
  // An attribute not listed gets its unit from its name's suffix (the model names attributes by unit:
  // lel_percent, co_ppm, hcho_ugm3, depth_m, used_h, duration_s) and a label from the attribute's name.
  const ATTRIBUTES = {
    "on_off.on": { label: "Power", words: ["on", "off"] },
    "level.percent": { label: "Brightness", unit: "%" },
    "color_temperature.kelvin": { label: "Colour temperature", unit: "K" },
    "color.hue": { label: "Hue", unit: "°" }, "color.saturation": { label: "Saturation", unit: "%" },
    "color.x": { label: "Colour x" }, "color.y": { label: "Colour y" },
    "power_meter.watts": { label: "Power", unit: "W" }, "power_meter.volts": { label: "Voltage", unit: "V" },
    "power_meter.amps": { label: "Current", unit: "A" }, "power_meter.power_factor": { label: "Power factor" },
    "power_meter.hertz": { label: "Frequency", unit: "Hz" },
    "energy_meter.kwh": { label: "Energy", unit: "kWh", digits: 2 },
    "energy_meter.exported_kwh": { label: "Energy exported", unit: "kWh", digits: 2 },
    "temperature.celsius": { label: "Temperature", unit: "°C" }, "humidity.percent": { label: "Humidity", unit: "%" },
    "illuminance.lux": { label: "Light", unit: "lx" }, "illuminance.percent": { label: "Light level", unit: "%" },
    "pressure.hpa": { label: "Pressure", unit: "hPa" },
    "air_quality.co2_ppm": { label: "CO₂", unit: "ppm" }, "air_quality.pm1_ugm3": { label: "PM1", unit: "µg/m³" },
    "air_quality.pm25_ugm3": { label: "PM2.5", unit: "µg/m³" },
    "air_quality.pm10_ugm3": { label: "PM10", unit: "µg/m³" },
    "air_quality.voc_ppb": { label: "VOC", unit: "ppb" }, "air_quality.voc_ugm3": { label: "VOC", unit: "µg/m³" },
    "air_quality.voc_index": { label: "VOC index" },
    "air_quality.hcho_ugm3": { label: "Formaldehyde", unit: "µg/m³" },
    "occupancy.occupied": { label: "Motion", words: ["motion", "clear"] },
    "contact.open": { label: "Contact", words: ["open", "closed"] },
    "water_leak.leak": { label: "Water leak", words: ["LEAK", "dry"], alarm: true },
    "smoke_co_alarm.smoke": { label: "Smoke", words: ["SMOKE", "no smoke"], alarm: true },
    "smoke_co_alarm.co": { label: "Carbon monoxide", words: ["CO!", "no CO"], alarm: true },
    "smoke_co_alarm.co_ppm": { label: "CO level", unit: "ppm" },
    "gas.detected": { label: "Gas", words: ["GAS", "no gas"], alarm: true },
    "gas.lel_percent": { label: "Gas level", unit: "% LEL" }, "gas.ppm": { label: "Gas level", unit: "ppm" },
    "vibration.detected": { label: "Vibration", words: ["vibration", "still"] },
    "tamper.tampered": { label: "Tamper", words: ["tampered", "ok"], alarm: true },
    "battery.percent": { label: "Battery", unit: "%" },
    "battery.low": { label: "Battery", words: ["low", "ok"], alarm: true },
    "battery.volts": { label: "Battery voltage", unit: "V" },
    "siren.on": { label: "Siren", words: ["sounding", "silent"] }, "siren.tone": { label: "Tone" },
    "siren.volume_percent": { label: "Volume", unit: "%" }, "siren.duration_s": { label: "Sounds for", unit: "s" },
    "soil_moisture.percent": { label: "Soil moisture", unit: "%" },
    "water_level.percent": { label: "Tank level", unit: "%" }, "water_level.depth_m": { label: "Depth", unit: "m" },
    "water_level.state": { label: "Level" },
    "filter.life_percent": { label: "Filter life left", unit: "%" },
    "filter.replace": { label: "Filter", words: ["replace now", "ok"], alarm: true },
    "filter.used_h": { label: "Filter used", unit: "h" },
    "button.last_event": { label: "Last press" },
    "thermostat.current_celsius": { label: "Room", unit: "°C" },
    "thermostat.target_celsius": { label: "Target", unit: "°C" },
    "thermostat.mode": { label: "Mode", enum: { heat_cool: "heat/cool", fan_only: "fan only" } },
    "thermostat.running": { label: "Running" },
    "thermostat.window_open": { label: "Window", words: ["open, heating paused", "closed"], note: true },
    "valve.position_percent": { label: "Valve", unit: "%" },
    "valve.open": { label: "Valve", words: ["open", "closed"] },
    "cover.position_percent": { label: "Position", unit: "%" }, "cover.tilt_percent": { label: "Tilt", unit: "%" },
    "cover.motion": { label: "Moving" },
    "lock.state": { label: "Lock" }, "lock.door_open": { label: "Door", words: ["open", "closed"] },
    "fan.on": { label: "Fan", words: ["on", "off"] }, "fan.speed_percent": { label: "Fan speed", unit: "%" },
    "fan.preset": { label: "Fan mode" },
    "connectivity.online": { label: "Online", words: ["yes", "no"] },
    "connectivity.rssi_dbm": { label: "Signal", unit: "dBm" }, "connectivity.lqi": { label: "Link quality" },
    "connectivity.last_seen": { label: "Last seen" },
    "presence.present": { label: "Presence", words: ["present", "away"] }, "presence.area": { label: "Where" },
    "presence.rssi_dbm": { label: "Signal", unit: "dBm" }, "presence.distance_m": { label: "Distance", unit: "m" },
    "appliance.state": { label: "State" }, "appliance.remaining_s": { label: "Remaining", unit: "s" },
    "power_meter.total_watts": { label: "Total power", unit: "W" },
  };
  const SUFFIX_UNITS = [["_celsius", "°C"], ["_percent", "%"], ["_kwh", "kWh"], ["_watts", "W"], ["_ppm", "ppm"],
    ["_ppb", "ppb"], ["_ugm3", "µg/m³"], ["_dbm", "dBm"], ["_m", "m"], ["_s", "s"], ["_h", "h"]];

  // The table above in the reader's language: its labels and words are keys of the catalogue
  // ("attr.<capability.attribute>", and ".true"/".false" for the words); English where one lacks them.
  const translatedAttributes = new Map();

  function translatedAttribute(key, known) {
    const cacheKey = `${i18n.locale()}:${key}`;
    let info = translatedAttributes.get(cacheKey);
    if (!info) {
      const word = (k, english) => { const text = t(k); return text === k ? english : text; };
      info = { ...known, label: word(`attr.${key}`, known.label) };
      if (known.words) {
        info.words = [word(`attr.${key}.true`, known.words[0]), word(`attr.${key}.false`, known.words[1])];
      }
      translatedAttributes.set(cacheKey, info);
    }
    return info;
  }

  function attributeInfo(capability, attribute) {
    const known = ATTRIBUTES[`${capability}.${attribute}`];
    if (known) return translatedAttribute(`${capability}.${attribute}`, known);
    const suffix = SUFFIX_UNITS.find(([end]) => attribute.endsWith(end));
    // "co2_ppm" -> "CO2", "remaining_s" -> "Remaining": the attribute's own words, without its unit.
    const words = (suffix ? attribute.slice(0, -suffix[0].length) : attribute).replaceAll("_", " ").trim()
      || capability.replaceAll("_", " ");
    return { label: words.charAt(0).toUpperCase() + words.slice(1), unit: suffix ? suffix[1] : "" };
  }

  function unitOf(capability, attribute) {
    return attributeInfo(capability, attribute).unit || "";
  }

  function label(capability, attribute) {
    return attributeInfo(capability, attribute).label;
  }

  // Readings that need someone, shown in red; and those worth knowing, shown in amber.
  function severity(key, value) {
    const [capability, attribute] = key.split(".");
    const info = attributeInfo(capability, attribute);
    if (value === true && info.alarm) return "bad";
    if (value === true && info.note) return "note";
    if (key === "water_level.state" && (value === "low" || value === "high")) return "bad";
    return "";
  }

  // Shown by a control instead of as a reading (and, per tile, whatever a control shows: a siren, a fan's speed).
  const CONTROLLED = new Set(["on_off.on", "level.percent", "cover.position_percent", "thermostat.target_celsius"]);
  const HIDDEN = new Set(["color_temperature.min_kelvin", "color_temperature.max_kelvin", "connectivity.last_seen",
                          "connectivity.lqi", "button.button", "fan.speed_steps"]);

  function supports(device, component, capability, commandName) {
    const cap = ((device.capabilities || {})[component] || {})[capability];
    return Boolean(cap && cap.commands && cap.commands.includes(commandName));
  }

  function limitsOf(device, component, capability, key, fallback) {
    const cap = ((device.capabilities || {})[component] || {})[capability];
    const limit = cap && cap.limits && cap.limits[key];
    return [limit && limit[0] !== null ? limit[0] : fallback[0], limit && limit[1] !== null ? limit[1] : fallback[1]];
  }

  // ----- meters with phases or channels

  // A phase of a multi-phase meter: `l1`, `l2`, `l3` (the model's names for phases A, B, C: Shelly's 3EM,
  // Zigbee2MQTT's power_a …), or `a`, `b`, `c` as some adapters may still name them.
  const PHASE = /^(?:[abc]|l[1-9])$/;
  const byComponent = (a, b) => (a !== "main") - (b !== "main") || a.localeCompare(b);

  function measuresPower(device, component) {
    const support = (((device.capabilities || {})[component]) || {}).power_meter;
    if (support) return (support.attributes || []).includes("watts");
    const values = (((device.components || {})[component]) || {}).power_meter;
    return Boolean(values && "watts" in values);
  }

  function hasOnOff(device, component) {
    return "on_off" in (((device.components || {})[component]) || {});
  }

  // Which components make up a device's power. `main`'s reading is the device's own total when it has one
  // (a Shelly 3EM's total_act_power, a Zigbee2MQTT meter's power or total_power); its phases are not added
  // to it again. Without one, the device's power is the sum of its phases or channels. Two cases where main
  // is itself one of the parts, so it is summed with them: a meter reporting phase A as its plain reading
  // (it has phases l2 and l3 but no l1: Zigbee2MQTT's power beside power_b, power_c), and a multi-channel switch
  // whose main is its first channel (a Shelly Pro 4PM: main and switch_1 … each switch and measure).
  function powerPlan(device) {
    const all = Object.keys(device.components || {}).filter((c) => measuresPower(device, c)).sort(byComponent);
    const parts = all.filter((c) => c !== "main");
    if (!all.includes("main")) return { components: parts, summed: parts.length > 1 };
    if (!parts.length) return { components: ["main"], summed: false };
    const mainIsFirstPhase = parts.some((c) => c === "b" || c === "l2") && !parts.some((c) => c === "a" || c === "l1");
    const mainIsFirstChannel = hasOnOff(device, "main") && parts.every((c) => !PHASE.test(c) && hasOnOff(device, c));
    if (mainIsFirstPhase || mainIsFirstChannel) return { components: all, summed: true };
    return { components: ["main"], summed: false };
  }

  // A meter's phase, as opposed to a channel named the same way (a 2-gang switch's l1 and l2 each switch).
  function isPhase(device, component) {
    const caps = (device.components || {})[component] || {};
    return PHASE.test(component) && (/^[abc]$/.test(component) || ("power_meter" in caps && !("on_off" in caps)));
  }

  function componentTitle(device, component) {
    return isPhase(device, component) ? t("house.phase", { phase: component.toUpperCase() }) : component;
  }

  // "phases L1, L2 and L3" (main being the first phase when the others start at the second) or
  // "main, switch_1 and switch_2".
  function partsText(device, plan) {
    const phases = plan.components.filter((c) => isPhase(device, c));
    if (phases.length && plan.components.every((c) => isPhase(device, c) || c === "main")) {
      const first = phases.some((c) => c.startsWith("l")) ? "L1" : "A";
      return t("house.phases", { phases: joinNames(plan.components.map((c) => (c === "main" ? first
        : c.toUpperCase()))) });
    }
    return joinNames(plan.components);
  }

  // The device's power as the sum of its parts, when every part has reported.
  function summedPower(device, plan) {
    if (!plan.summed) return null;
    let watts = 0;
    for (const component of plan.components) {
      const value = ((device.components[component] || {}).power_meter || {}).watts;
      if (typeof value !== "number") return null;
      watts += value;
    }
    return watts;
  }

  // ----- areas and names

  // An area as people write it: the owner's name for it, else "living_room" -> "Living room".
  function areaName(area) {
    if (!area) return "";
    const named = state.areaNames.get(area);
    if (named) return named;
    const words = String(area).replace(/[_-]+/g, " ").trim();
    return words === words.toLowerCase() ? words.charAt(0).toUpperCase() + words.slice(1) : words;
  }

  async function loadAreas() {
    try {
      const data = await api("GET", "/api/areas");
      state.areaNames = new Map(data.areas.filter((a) => a.edited).map((a) => [a.id, a.name]));
      state.areasEditable = Boolean(data.editable);
    } catch {
      return; // an older gateway, or none of this: the areas keep their own names
    }
    if (state.page === "house") renderHouse();
  }

  let renamingArea = null;

  function openAreaEdit(area) {
    renamingArea = area;
    $("area-explain").replaceChildren(...textWith("area.explain", { area: el("code", { id: "area-id", text: area }) }));
    $("area-name").value = state.areaNames.get(area) || "";
    $("area-name").placeholder = areaName(area);
    $("area-error").hidden = true;
    $("area-dialog").showModal();
    $("area-name").focus();
  }

  async function saveArea(reset) {
    const name = $("area-name").value.trim();
    try {
      const data = await api("PUT", `/api/areas/${encodeURIComponent(renamingArea)}`,
                             { name: reset || !name ? null : name });
      state.areaNames = new Map(data.areas.filter((a) => a.edited).map((a) => [a.id, a.name]));
      $("area-dialog").close();
      renderHouse();
      toast(t("common.saved"));
    } catch (err) {
      const error = $("area-error");
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  // What a device is, for one without a name of its own: from its capabilities, else its model.
  // Each kind's words are the catalogue's "house.kind.<kind>" ("thermometer"; "Thermometer" to start a name).
  const KINDS = [["temperature", "thermometer"], ["soil_moisture", "plant_sensor"], ["occupancy", "motion_sensor"],
    ["contact", "door_sensor"], ["presence", "presence_tag"], ["button", "button"], ["water_leak", "leak_sensor"],
    ["illuminance", "light_sensor"], ["air_quality", "air_quality_sensor"], ["power_meter", "power_meter"]];
  // The names BLE firmware advertises by default (pvvx/ATC "ATC_A1B2C3", Xiaomi "LYWSD03MMC", "MJ_HT_V1",
  // BTHome's "BTHome …"), and the adapter's own fallback ("Thermometer A1:B2"): not a name a person gave.
  const DEFAULT_BLE_NAME = new RegExp("^(?:(?:LYWSD|MJ_HT|CGG|MHO)\\w*"
    + "|(?:ATC|LYWSD\\w*|MJ_HT\\w*|CGG\\w*|MHO\\w*|BTHome|Thermometer|[A-Za-z]+ sensor)[\\s_-]*(?:[0-9A-F]{2}[:_-]?){2,6}"
    + "|(?:[0-9A-F]{2}[:_-]?){3,6})$", "i");

  // [the kind in a name's middle, the kind starting a name]: ["thermometer", "Thermometer"].
  function kindOf(device) {
    const caps = new Set(Object.values(device.components || {}).flatMap((c) => Object.keys(c)));
    const found = KINDS.find(([capability]) => caps.has(capability));
    if (found) return [t(`house.kind.${found[1]}`), t(`house.kind.${found[1]}.start`)];
    const model = device.model || t("house.kind.sensor");
    return [model, model.charAt(0).toUpperCase() + model.slice(1)];
  }

  // The name shown: the device's own, except a BLE sensor that only has its firmware's default name, which
  // is called by what it is and where: "Bedroom thermometer" (or "Thermometer A1:B2" without an area).
  function shownName(device) {
    if (!device) return "";
    const name = device.name || "";
    if (!String(device.id).startsWith("ble:") || (name && !DEFAULT_BLE_NAME.test(name) && name !== device.id)) {
      return name || device.id;
    }
    const [kind, kindStarting] = kindOf(device);
    if (device.area) return t("house.kind_in_area", { area: areaName(device.area), kind });
    const mac = String(device.id).slice(4).toUpperCase();
    return t("house.kind_with_address", { kind: kindStarting, address: mac.slice(-5) });
  }

  // ----- house

  function renderHouse() {
    const root = $("house");
    const filter = $("house-filter").value.trim().toLowerCase();
    const byArea = new Map();
    for (const device of [...state.devices.values()].sort((a, b) => shownName(a).localeCompare(shownName(b)))) {
      const words = [shownName(device), device.name, device.area, areaName(device.area), device.model].join(" ");
      if (filter && !words.toLowerCase().includes(filter)) continue;
      const area = device.area || "";
      if (!byArea.has(area)) byArea.set(area, []);
      byArea.get(area).push(device);
    }
    const areas = [...byArea.keys()].sort((a, b) => (a === "") - (b === "") || areaName(a).localeCompare(areaName(b)));
    state.tiles.clear();
    // The first screenful of tiles now, the rest in slices between frames: 1,000 tiles built at once held a
    // Pi's main thread for seconds. A tile not filled yet is an empty card of a tile's size.
    const later = [];
    let filled = 0;
    const sections = areas.map((area) => el("section", { className: "area", dataset: { area } },
      el("header", { className: "area-head" },
        area ? el("h2", { text: areaName(area), title: area, translate: false })
          : el("h2", { text: t("house.no_area") }),
        area && state.areasEditable && mayConfigure()
          ? el("button", { type: "button", className: "icon area-edit", title: t("house.rename_area"),
                           "aria-label": t("house.rename_area_named", { area: areaName(area) }),
                           onclick: () => openAreaEdit(area) }, "✎")
          : null),
      el("div", { className: "tiles" }, byArea.get(area).map((device) => {
        const tile = el("article", { className: "tile", dataset: { device: device.id } });
        state.tiles.set(device.id, tile);
        if (filled < TILES_AT_ONCE) {
          fillTile(tile, device);
          filled += 1;
        } else {
          tile.dataset.pending = "1";
          later.push(device.id);
        }
        return tile;
      }))));
    fillLater(later);
    if (!sections.length) {
      sections.push(el("p", { className: "muted", text: state.devices.size ? t("house.no_match")
        : t("house.no_devices") }));
    }
    root.replaceChildren(...sections);
    const list = $("area-list");
    list.replaceChildren(...[...new Set([...state.devices.values()].map((d) => d.area).filter(Boolean))].sort()
      .map((area) => el("option", { value: area, label: areaName(area) })));
  }

  // Fill the tiles of `ids` a slice (at most FILL_SLICE_MS) at a time; a newer render drops an older queue.
  function fillLater(ids) {
    const run = ++state.fill.run;
    state.fill.ids = ids;
    state.fill.next = 0;
    const slice = () => {
      if (run !== state.fill.run) return;
      const until = performance.now() + FILL_SLICE_MS;
      const queue = state.fill;
      while (queue.next < queue.ids.length && performance.now() < until) {
        const id = queue.ids[queue.next++];
        const tile = state.tiles.get(id);
        const device = state.devices.get(id);
        if (tile && device && tile.dataset.pending) fillTile(tile, device);
      }
      if (queue.next < queue.ids.length) setTimeout(slice, 0);
    };
    if (ids.length) setTimeout(slice, 0);
  }

  function updateTile(device) {
    const tile = state.tiles.get(device.id);
    if (!tile) { renderHouse(); return; }
    if (state.busy.has(device.id)) { tile.dataset.stale = "1"; return; }
    fillTile(tile, device);
  }

  function fillTile(tile, device) {
    delete tile.dataset.stale;
    delete tile.dataset.pending;
    tile.classList.toggle("offline", device.available === false);
    const head = el("header", { className: "tile-head" },
      el("h3", { className: "device-name", text: shownName(device), title: device.id, translate: false }),
      mayConfigure() ? el("button", { type: "button", className: "icon edit", title: t("house.edit_title"),
                                      "aria-label": t("house.edit_named", { name: shownName(device) }),
                                      onclick: () => openEdit(device.id) }, "✎") : null);
    // The maker and model are the device's own words (translate="no": not the page's to translate).
    const meta = el("p", { className: "device-meta muted" },
      el("span", { translate: false, text: [device.manufacturer, device.model].filter(Boolean).join(" · ")
        || device.source }),
      device.available === false ? el("span", { className: "pill bad", text: t("house.offline") }) : null);
    const tags = (device.tags || []).length
      ? el("p", { className: "tags" }, device.tags.map((tag) => el("span", { className: "pill tag", text: tag,
                                                                           translate: false })))
      : null;
    const body = el("div", { className: "tile-body" });
    const components = Object.keys(device.components || {}).sort(byComponent);
    // A meter whose power is the sum of its phases or channels: the sum first, each part under it.
    const plan = powerPlan(device);
    const total = summedPower(device, plan);
    if (total !== null) {
      body.append(el("dl", { className: "readings total" },
        el("div", { className: "reading", dataset: { key: "power_meter.total_watts" } },
          el("dt", { text: label("power_meter", "total_watts") }),
          el("dd", { text: `${fmtNumber(total)} W`, title: t("house.sum_of", { parts: partsText(device, plan) }) }))));
    }
    for (const component of components) {
      const caps = device.components[component];
      const block = el("div", { className: "component", dataset: { component } });
      if (components.length > 1) {
        block.append(el("p", { className: "component-name", text: componentTitle(device, component),
                               translate: isPhase(device, component) ? null : "no" }));
      }
      const shown = new Set();
      // Who may not send commands sees what the controls would show as readings.
      const controlled = mayConfigure();
      if (controlled) block.append(...controlsFor(device, component, caps, shown));
      const readings = readingsFor(caps, shown, controlled);
      if (readings.length) block.append(el("dl", { className: "readings" }, readings));
      body.append(block);
    }
    tile.replaceChildren(...[head, meta, tags, body].filter(Boolean));
  }

  function switchButton(device, component, capability, on, words, onclick) {
    return el("button", {
      type: "button", className: `switch ${capability} ${on ? "on" : ""}`, role: "switch", "aria-checked": String(on),
      // The component only when there are several (a two-gang switch's l1 and l2); "main" is just the device.
      "aria-label": component === "main"
        ? t("house.control_label", { name: shownName(device), what: label(capability, "on") })
        : t("house.switch_label", { name: shownName(device), component, what: label(capability, "on") }),
      dataset: { capability, component }, onclick,
    }, el("span", { className: "knob" }), el("span", { className: "switch-label", text: on ? words[0] : words[1] }));
  }

  // ----- fans

  function fanSteps(fan) {
    const steps = fan.speed_steps;
    return Number.isInteger(steps) && steps >= 1 && steps <= 100 ? steps : null;
  }

  // The speed a percentage is on a fan with `steps` speeds: 0 is off, anything above it at least the first.
  function fanStep(percent, steps) {
    if (percent <= 0) return 0;
    return Math.min(steps, Math.max(1, Math.round((percent * steps) / 100)));
  }

  function fanSpeedText(fan) {
    const percent = fan.speed_percent;
    if (typeof percent !== "number") return "–";
    const steps = fanSteps(fan);
    if (!steps) return `${fmtNumber(percent, 0)} %`;
    const step = fanStep(percent, steps);
    return step === 0 ? t("house.fan_off_short") : t("house.fan_step_of", { step, steps });
  }

  // Fans with few speeds get a button per speed; others (or one that does not say) a slider.
  const MAX_STEP_BUTTONS = 10;

  function fanControl(device, component, caps) {
    const fan = caps.fan;
    const steps = fanSteps(fan);
    const set = (percent) => command(device, component, "fan", "set_speed", { percent });
    if (!steps || steps > MAX_STEP_BUTTONS) {
      return slider(device, component, label("fan", "speed_percent"), fan.speed_percent, [0, 100], 1, "%", set);
    }
    const current = typeof fan.speed_percent === "number" ? fanStep(fan.speed_percent, steps) : null;
    // Off is the power switch's, when the fan has one; set_speed 0 otherwise.
    const hasSwitch = "on_off" in caps && supports(device, component, "on_off", "off");
    const offered = [...(hasSwitch ? [] : [0]), ...Array.from({ length: steps }, (_, i) => i + 1)];
    return el("div", { className: "fan", role: "group",
                       "aria-label": t("house.control_label", { name: shownName(device), what: label("fan", "speed_percent") }) },
      el("span", { className: "label", text: label("fan", "speed_percent") }),
      el("output", { className: "fan-speed", text: fanSpeedText(fan) }),
      el("div", { className: "buttons steps" }, offered.map((step) => el("button", {
        type: "button", className: "step", text: step === 0 ? t("house.off") : String(step),
        "aria-pressed": String(step === current),
        "aria-label": step === 0 ? t("house.fan_off") : t("house.fan_speed_of", { step, steps }),
        // The percentage at or just under the speed: a device goes to the nearest speed at or above it.
        onclick: () => set(Math.floor((step * 100) / steps)),
      }))));
  }

  function controlsFor(device, component, caps, shown) {
    const controls = [];
    if ("on_off" in caps && supports(device, component, "on_off", "on")) {
      const on = caps.on_off.on === true;
      controls.push(switchButton(device, component, "on_off", on, [t("house.on"), t("house.off")],
        () => command(device, component, "on_off", on ? "off" : "on")));
    }
    if ("siren" in caps && supports(device, component, "siren", "on") && supports(device, component, "siren", "off")) {
      const on = caps.siren.on === true;
      // On with the device's own tone, volume and duration; the tone it sounds shows as a reading.
      controls.push(switchButton(device, component, "siren", on, [t("house.sounding"), t("house.silent")],
        () => command(device, component, "siren", on ? "off" : "on")));
      shown.add("siren.on");
    }
    if ("level" in caps && supports(device, component, "level", "set")) {
      controls.push(slider(device, component, label("level", "percent"), caps.level.percent, [0, 100], 1, "%",
        (value) => command(device, component, "level", "set", { percent: value })));
    }
    if ("fan" in caps && supports(device, component, "fan", "set_speed")) {
      controls.push(fanControl(device, component, caps));
      shown.add("fan.speed_percent");
      // A preset that is only the speed ("5", "off") says what the buttons say; "auto" is worth showing.
      if (/^(?:\d+|off)$/.test(String(caps.fan.preset))) shown.add("fan.preset");
    }
    if ("cover" in caps) {
      if (supports(device, component, "cover", "set_position")) {
        controls.push(slider(device, component, label("cover", "position_percent"), caps.cover.position_percent, [0, 100], 1, "%",
          (value) => command(device, component, "cover", "set_position", { percent: value })));
      }
      const buttons = ["open", "stop", "close"].filter((c) => supports(device, component, "cover", c));
      if (buttons.length) {
        controls.push(el("div", { className: "buttons" }, buttons.map((c) => el("button", {
          type: "button", text: t(`house.cover.${c}`), onclick: () => command(device, component, "cover", c) }))));
      }
    }
    if ("thermostat" in caps && supports(device, component, "thermostat", "set_target")) {
      const target = caps.thermostat.target_celsius;
      const [low, high] = limitsOf(device, component, "thermostat", "celsius", [5, 30]);
      const step = (delta) => {
        const base = typeof target === "number" ? target : 20;
        const value = Math.min(high, Math.max(low, Math.round((base + delta) * 2) / 2));
        command(device, component, "thermostat", "set_target", { celsius: value });
      };
      controls.push(el("div", { className: "thermostat" },
        el("span", { className: "label", text: label("thermostat", "target_celsius") }),
        el("button", { type: "button", className: "icon", "aria-label": t("house.lower_target"), onclick: () => step(-0.5) },
           "−"),
        el("output", { className: "target", text: typeof target === "number" ? `${fmtNumber(target)} °C` : "–" }),
        el("button", { type: "button", className: "icon", "aria-label": t("house.raise_target"), onclick: () => step(0.5) },
           "+")));
    }
    if ("lock" in caps) {
      const buttons = ["lock", "unlock"].filter((c) => supports(device, component, "lock", c));
      if (buttons.length) {
        controls.push(el("div", { className: "buttons" }, buttons.map((c) => el("button", {
          type: "button", text: t(`house.lock.${c}`), onclick: () => command(device, component, "lock", c) }))));
      }
    }
    return controls;
  }

  function slider(device, component, label, value, range, step, unit, onSet) {
    const input = el("input", { type: "range", min: range[0], max: range[1], step,
                                value: typeof value === "number" ? value : range[0],
                                "aria-label": t("house.control_label", { name: shownName(device), what: label }) });
    const out = el("output", { text: typeof value === "number" ? `${fmtNumber(value, 0)}${unit}` : "–" });
    const release = () => {
      state.busy.delete(device.id);
      const tile = state.tiles.get(device.id);
      if (tile && tile.dataset.stale) fillTile(tile, state.devices.get(device.id) || device);
    };
    input.addEventListener("pointerdown", () => state.busy.add(device.id));
    input.addEventListener("input", () => { out.textContent = `${input.value}${unit}`; });
    input.addEventListener("change", () => { release(); onSet(Number(input.value)); });
    input.addEventListener("pointercancel", release);
    return el("label", { className: "slider" }, el("span", { className: "label", text: label }), input, out);
  }

  function readingText(caps, capability, attribute, value) {
    const key = `${capability}.${attribute}`;
    if (key === "fan.speed_percent") return fanSpeedText(caps.fan);
    const info = attributeInfo(capability, attribute);
    if (typeof value === "boolean" && info.words) return info.words[value ? 0 : 1];
    if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
    if (value === null) return t("common.unknown");
    if (typeof value === "number") {
      const unit = unitOf(capability, attribute);
      return `${fmtNumber(value, unit === "kWh" ? 2 : 1)}${unit ? ` ${unit}` : ""}`;
    }
    // An enum's words: the catalogue's "attr.<capability.attribute>.<value>", else the table's, else the value.
    if (typeof value === "string") {
      const key = `attr.${capability}.${attribute}.${value}`;
      const text = t(key);
      if (text !== key) return text;
      if (info.enum && info.enum[value]) return info.enum[value];
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function readingsFor(caps, shown, controlled = true) {
    const items = [];
    for (const capability of Object.keys(caps).sort()) {
      for (const [attribute, value] of Object.entries(caps[capability])) {
        const key = `${capability}.${attribute}`;
        if ((controlled && CONTROLLED.has(key)) || HIDDEN.has(key) || (shown && shown.has(key))) continue;
        const level = severity(key, value);
        const text = readingText(caps, capability, attribute, value);
        // A word the device has for itself (a siren's tone "sound_light") is shown as it is, not translated.
        const own = typeof value === "string" && text === value;
        items.push(el("div", { className: `reading ${level}`, dataset: { key } },
          el("dt", { text: label(capability, attribute) }),
          el("dd", { text, translate: own ? false : null })));
      }
    }
    return items;
  }


  // ------------------------------------------------------------------ device edit dialog

  let editing = null;

  async function openEdit(deviceId) {
    const dialog = $("edit-dialog");
    editing = deviceId;
    $("edit-error").hidden = true;
    let meta;
    try {
      meta = await api("GET", `/api/devices/${encodeURIComponent(deviceId)}/meta`);
    } catch (err) {
      toast(err.message, true);
      return;
    }
    const { device, overrides, base } = meta;
    $("edit-id").textContent = device.id;
    $("edit-name").value = overrides.name || "";
    $("edit-name").placeholder = (base && base.name) || device.name;
    $("edit-area").value = overrides.area || "";
    $("edit-area").placeholder = (base && base.area) || t("edit.no_area");
    $("edit-tags").value = (overrides.tags || []).join(", ");
    $("edit-tags").placeholder = ((base && base.tags) || []).join(", ") || t("edit.no_tags");
    $("edit-name-hint").textContent = t("edit.name_from", { name: (base && base.name) || device.name });
    $("edit-area-hint").textContent = t("edit.area_from", { area: (base && base.area) || t("edit.none") });
    $("edit-tags-hint").textContent = t("edit.tags_from", { tags: ((base && base.tags) || []).join(", ")
      || t("edit.none") });
    if (!dialog.open) dialog.showModal();
    $("edit-name").focus();
  }

  async function saveEdit(reset) {
    const value = (id) => $(id).value.trim();
    // A comma as Chinese writes it (，、) separates tags too.
    const tags = value("edit-tags").split(/[,，、]/).map((tag) => tag.trim()).filter(Boolean);
    const body = reset ? { name: null, area: null, tags: null } : {
      name: value("edit-name") || null,
      area: value("edit-area") || null,
      tags: tags.length ? tags : null,
    };
    try {
      const answer = await api("PATCH", `/api/devices/${encodeURIComponent(editing)}`, body);
      state.devices.set(answer.device.id, answer.device);
      renderHouse();
      $("edit-dialog").close();
      toast(t("common.saved"));
    } catch (err) {
      const error = $("edit-error");
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  // ------------------------------------------------------------------ alerts

  async function refreshAlerts() {
    const { changed, done } = watch("alerts");
    try {
      const data = await api("GET", "/api/alerts");
      state.alerts = merge(new Map(data.alerts.map((a) => [a.id, a])), state.alerts, changed);
    } catch (err) {
      if (err.status === 404) state.alerts = new Map(); // no scene engine
      else return;
    } finally {
      done();
    }
    renderAlerts();
  }

  // Open: nobody has acknowledged it yet. Acknowledged alerts are being looked after; resolved ones are over.
  function needsAttention(alert) {
    return alert.state === "open";
  }

  const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
  // Resolved alerts shown (newest first); the API keeps the rest.
  const RESOLVED_SHOWN = 30;

  const newestRaised = (a, b) => String(b.raised_at).localeCompare(String(a.raised_at));

  function renderAlerts() {
    const alerts = [...state.alerts.values()];
    const open = alerts.filter(needsAttention).sort((a, b) => ((SEVERITY_RANK[a.severity] ?? 3)
      - (SEVERITY_RANK[b.severity] ?? 3)) || newestRaised(a, b));
    const handled = alerts.filter((a) => a.state === "acknowledged").sort(newestRaised);
    const resolved = alerts.filter((a) => a.state === "resolved")
      .sort((a, b) => String(b.resolved_at).localeCompare(String(a.resolved_at)));
    const count = $("alert-count");
    count.hidden = !open.length;
    count.textContent = String(open.length);
    const banner = $("alert-banner");
    const urgent = open[0];
    banner.hidden = !urgent;
    if (urgent) {
      banner.replaceChildren(el("strong", { text: urgent.title, translate: false }), " ",
        el("span", { text: urgent.message, translate: false }), " ",
        el("button", { type: "button", className: "primary", text: t("alerts.acknowledge"),
                       onclick: () => ack(urgent.id) }),
        " ", el("a", { href: "#/alerts", text: open.length > 1 ? t("alerts.all_n", { count: open.length })
          : t("alerts.details") }));
    }
    const parts = [];
    if (open.length) {
      parts.push(el("section", { className: "alert-group open", dataset: { group: "open" } },
        el("h3", { text: t("alerts.needs_attention") }), open.map(alertCard)));
    }
    if (handled.length) {
      parts.push(el("section", { className: "alert-group acknowledged", dataset: { group: "acknowledged" } },
        el("h3", { text: t("alerts.being_looked_after") }), handled.map(alertCard)));
    }
    if (!open.length && !handled.length) {
      const text = resolved.length ? t("alerts.all_well_resolved") : t("alerts.all_well");
      parts.push(el("p", { className: "muted all-well", text }));
    }
    if (resolved.length) {
      const shown = resolved.slice(0, RESOLVED_SHOWN);
      parts.push(el("details", {
        className: "alert-group resolved", dataset: { group: "resolved" }, open: state.showResolved,
        ontoggle: (event) => { state.showResolved = event.target.open; },
      },
      el("summary", {}, t("alerts.resolved_n", { count: i18n.number(resolved.length) })),
      shown.map(alertCard),
      resolved.length > shown.length
        ? el("p", { className: "muted", text: t("alerts.older", { count: resolved.length - shown.length }) }) : null));
    }
    $("alerts").replaceChildren(...parts);
  }

  // Who did it, as a person reads it: "token:anna" is Anna's token.
  function who(by) {
    if (!by) return t("alerts.someone");
    if (by.startsWith("token:")) return by.slice("token:".length);
    if (by.startsWith("scene:")) {
      const scene = state.scenes.get(by.slice("scene:".length));
      return scene ? t("alerts.the_scene", { name: scene.name }) : t("alerts.a_scene");
    }
    return by;
  }

  // The contacts who were sent the alert (and so are told when it is resolved).
  function toldTargets(alert) {
    return [...new Set((alert.notifications || []).filter((n) => n.kind !== "resolved").map((n) => n.target))];
  }

  function resolvedText(alert) {
    let text = t("alerts.resolved_at", { at: fmtAt(alert.resolved_at) });
    const by = alert.resolved_by || "";
    if (by === "situation ended") text = t("alerts.resolved_itself", { at: fmtAt(alert.resolved_at) });
    else if (by && !by.startsWith("scene:")) {
      text = t("alerts.resolved_by", { at: fmtAt(alert.resolved_at), name: who(by) });
    }
    // The gateway's own wording is translated; a person's note is shown as they wrote it.
    const how = alert.resolution && alert.resolution !== "resolved by hand"
      ? (alert.resolution === "resident checked in" ? t("notify.resolution_checked_in") : alert.resolution) : "";
    return how ? `${text}: ${how}` : text;
  }

  function alertCard(alert) {
    const status = alert.state;
    const policy = alert.policy || {};
    const told = toldTargets(alert);
    const messages = (alert.notifications || []).filter((n) => n.kind !== "resolved");
    const failed = messages.filter((n) => n.status === "failed" || n.status === "unknown_target").length;
    let toldText = "";
    if (told.length) {
      toldText = messages.length > told.length
        ? t("alerts.told_messages", { names: joinNames(told), count: messages.length })
        : t("alerts.told", { names: joinNames(told) });
      if (failed) toldText += ` · ${t("alerts.not_delivered", { count: failed })}`;
    } else if (!(policy.contacts || []).length) {
      toldText = t("alerts.nobody_to_tell");
    }
    if (status === "open" && alert.next_escalation_at) {
      toldText += `${toldText ? " · " : ""}${t("alerts.next_message", { at: fmtAt(alert.next_escalation_at) })}`;
    }
    const contacts = [...new Set(policy.contacts || [])];
    const buttons = [];
    if (status === "open") {
      buttons.push(el("button", { type: "button", className: "primary ack", text: t("alerts.acknowledge"),
                                  onclick: () => ack(alert.id) }));
    }
    if (status !== "resolved") {
      buttons.push(el("button", { type: "button", className: `resolve ${status === "open" ? "" : "primary"}`,
                                  text: t("alerts.resolve"), onclick: () => openResolve(alert.id) }));
    }
    return el("article", {
      className: `card alert ${alert.severity} ${status} ${needsAttention(alert) ? "attention" : ""}`,
      dataset: { alert: alert.id, state: status },
    },
    el("header", {},
      el("span", { className: `pill ${alert.severity}`,
                   text: SEVERITY_RANK[alert.severity] !== undefined ? t(`alerts.pill.${alert.severity}`)
                     : alert.severity }),
      el("h3", { text: alert.title, translate: false })),
    el("p", { className: "message", text: alert.message, translate: false }),
    el("p", { className: "muted raised", title: fmtTime(alert.raised_at) },
      t("alerts.raised", { at: fmtAt(alert.raised_at) }),
      alert.area ? ` · ${areaName(alert.area)}` : ""),
    toldText ? el("p", { className: "muted told", text: toldText }) : null,
    alert.unanswered_at
      ? el("p", { className: `unanswered ${status === "resolved" ? "muted" : ""}`,
                  text: t("alerts.unanswered", { names: contacts.length ? joinNames(contacts) : t("alerts.everyone"),
                                                at: fmtAt(alert.unanswered_at) }) })
      : null,
    alert.acknowledged_at
      ? el("p", { className: "handled",
                  text: t("alerts.acknowledged_by",
                          { name: who(alert.acknowledged_by), at: fmtAt(alert.acknowledged_at) }) })
      : null,
    status === "acknowledged"
      ? el("p", { className: "muted", text: policy.resolves_itself
        ? t("alerts.resolves_itself") : t("alerts.resolve_when_dealt") })
      : null,
    status === "resolved" ? el("p", { className: "resolution", text: resolvedText(alert) }) : null,
    buttons.length ? el("div", { className: "buttons" }, buttons) : null);
  }

  function openResolve(alertId) {
    const alert = state.alerts.get(alertId);
    if (!alert) return;
    state.resolving = alertId;
    $("resolve-what").replaceChildren(el("strong", { text: alert.title, translate: false }), " ",
      el("span", { text: alert.message, translate: false }));
    $("resolve-note").value = "";
    const told = toldTargets(alert);
    $("resolve-hint").textContent = told.length
      ? sentence(t("alerts.will_be_told", { names: joinNames(told) })) : t("alerts.nobody_else");
    $("resolve-error").hidden = true;
    const dialog = $("resolve-dialog");
    if (!dialog.open) dialog.showModal();
    $("resolve-note").focus();
  }

  async function saveResolve() {
    const alertId = state.resolving;
    if (!alertId) return;
    const note = $("resolve-note").value.trim();
    const button = $("resolve-save");
    button.disabled = true;
    try {
      // No note: the gateway records "resolved by hand".
      const alert = await api("POST", `/api/alerts/${encodeURIComponent(alertId)}/resolve`,
                              note ? { note } : undefined);
      state.alerts.set(alert.id, alert);
      renderAlerts();
      $("resolve-dialog").close();
      toast(t("alerts.resolved_toast"));
    } catch (err) {
      const error = $("resolve-error");
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function ack(alertId) {
    try {
      const alert = await api("POST", `/api/alerts/${encodeURIComponent(alertId)}/ack`);
      state.alerts.set(alert.id, alert);
      renderAlerts();
      toast(t("alerts.acknowledged_toast"));
    } catch (err) {
      toast(err.message, true);
    }
  }

  // ------------------------------------------------------------------ scenes

  async function refreshScenes() {
    const { changed, done } = watch("scenes");
    const mode = watch("mode");
    try {
      const data = await api("GET", "/api/scenes");
      state.scenes = merge(new Map(data.scenes.map((s) => [s.id, s])), state.scenes, changed);
      // A mode change heard while the list was on its way is newer than the list's mode.
      if (!mode.changed.size) {
        state.mode = data.mode;
        $("mode-select").value = data.mode;
      }
    } catch (err) {
      if (err.status !== 404) return;
      state.scenes = new Map();
    } finally {
      done();
      mode.done();
    }
    renderScenes();
  }

  function renderScenes() {
    const root = $("scenes");
    const scenes = [...state.scenes.values()].sort((a, b) => a.id.localeCompare(b.id));
    if (!scenes.length) {
      root.replaceChildren(el("p", { className: "muted", text: t("scenes.none") }));
      return;
    }
    let profile = null;
    const nodes = [];
    for (const scene of scenes) {
      if (scene.profile !== profile) {
        profile = scene.profile;
        nodes.push(el("h3", { className: "profile", text: profile, translate: false }));
      }
      const traces = el("div", { className: "traces", id: `traces-${scene.id}` });
      const open = state.openTraces.has(scene.id);
      nodes.push(el("article", { className: "card scene", dataset: { scene: scene.id } },
        el("header", {},
          el("h4", { text: scene.name, translate: false }),
          mayConfigure()
            ? el("label", { className: "toggle" },
              el("input", { type: "checkbox", checked: scene.enabled,
                            "aria-label": t("scenes.enable", { name: scene.name }),
                            onchange: (e) => setEnabled(scene.id, e.target.checked) }),
              scene.enabled ? t("scenes.enabled") : t("scenes.disabled"))
            : el("span", { className: "muted scene-state", text: scene.enabled ? t("scenes.enabled") : t("scenes.disabled") })),
        scene.description ? el("p", { className: "muted", text: scene.description, translate: false }) : null,
        el("p", { className: "muted" }, t("scenes.triggers", { triggers: i18n.list(scene.triggers.map(triggerWord)) }),
          scene.last_run
            ? ` · ${t("scenes.last_run", { time: fmtTime(scene.last_run.t), result: resultWord(scene.last_run.result) })}`
            : ` · ${t("scenes.not_run")}`,
          scene.running ? ` · ${t("scenes.running")}` : ""),
        el("div", { className: "buttons" },
          mayConfigure() ? el("button", { type: "button", className: "run", text: t("scenes.run_now"),
                                          onclick: () => runScene(scene.id) }) : null,
          el("button", { type: "button", className: "ghost", text: open ? t("scenes.hide_runs") : t("scenes.show_runs"),
                         "aria-expanded": String(open), onclick: () => toggleTraces(scene.id) })),
        traces));
      if (open) loadTraces(scene.id, traces);
    }
    root.replaceChildren(...nodes);
  }

  // A trigger's kind ("absence") and a run's result or outcome ("done", "conditions not met") in words: the
  // catalogue's, else as the engine says it (an error's text).
  function triggerWord(kind) {
    const key = `scenes.trigger.${kind}`;
    const text = t(key);
    return text === key ? kind : text;
  }

  function resultWord(result) {
    const value = String(result ?? "");
    const key = `scenes.result.${value.replaceAll(" ", "_")}`;
    const text = t(key);
    if (text !== key) return text;
    if (value.startsWith("skipped")) return t("scenes.result.skipped");
    return value;
  }

  async function setEnabled(sceneId, enabled) {
    try {
      const scene = await api("PATCH", `/api/scenes/${encodeURIComponent(sceneId)}`, { enabled });
      state.scenes.set(scene.id, scene);
    } catch (err) {
      toast(err.message, true);
    }
    renderScenes();
  }

  async function runScene(sceneId) {
    try {
      // By hand means "do it now": the scene's conditions are for when it triggers by itself.
      await api("POST", `/api/scenes/${encodeURIComponent(sceneId)}/run`, { skip_conditions: true });
      toast(t("scenes.started"));
      state.openTraces.add(sceneId);
      renderScenes();
    } catch (err) {
      toast(err.message, true);
    }
  }

  function toggleTraces(sceneId) {
    if (state.openTraces.has(sceneId)) state.openTraces.delete(sceneId);
    else state.openTraces.add(sceneId);
    renderScenes();
  }

  // A scene's last runs as the gateway tells them: sentences with device names and the limits compared
  // (GET /api/scenes/{id}/runs, the same words as `hearth replay --explain`).
  async function loadTraces(sceneId, box) {
    const target = box || document.getElementById(`traces-${sceneId}`);
    if (!target) return;
    let data;
    try {
      data = await api("GET", `/api/scenes/${encodeURIComponent(sceneId)}/runs`);
    } catch (err) {
      target.replaceChildren(el("p", { className: "error", text: err.message }));
      return;
    }
    if (!data.runs.length) {
      target.replaceChildren(el("p", { className: "muted", text: t("scenes.no_runs") }));
      return;
    }
    target.replaceChildren(...data.runs.map((run) => el("details", { className: "trace",
                                                                       dataset: { outcome: run.outcome } },
      el("summary", {}, el("span", { className: "when", text: fmtTime(run.t) }), " · ", run.sentences[0] || "",
        el("span", { className: `pill outcome ${run.outcome.replaceAll(" ", "-")}`, text: resultWord(run.outcome) })),
      el("ul", { className: "sentences" }, run.sentences.slice(1).map((line) => el("li", { text: line }))))));
  }

  function deviceName(id) {
    const device = state.devices.get(id);
    return device ? shownName(device) : id;
  }

  // ------------------------------------------------------------------ energy

  // Charts are drawn by uPlot (gateway/web/vendor/uplot: MIT, ~50 KB, no dependencies, stepped paths built
  // in), loaded the first time the energy page opens so that the house page stays light.
  const UPLOT_JS = "/ui/vendor/uplot/uPlot.iife.min.js";
  const UPLOT_CSS = "/ui/vendor/uplot/uPlot.min.css";
  const DAY_S = 86400;

  function loadUplot() {
    if (!loadUplot.promise) {
      loadUplot.promise = new Promise((resolve, reject) => {
        document.head.append(el("link", { rel: "stylesheet", href: UPLOT_CSS }));
        const script = el("script", { src: UPLOT_JS });
        script.addEventListener("load", () => resolve(window.uPlot));
        script.addEventListener("error", () => {
          loadUplot.promise = null;
          reject(new Error(t("energy.chart_failed")));
        });
        document.head.append(script);
      });
    }
    return loadUplot.promise;
  }

  // The house's time zone, when the browser knows it by that name; else the browser's own.
  function zoneOr(timezone) {
    try {
      new Intl.DateTimeFormat([], { timeZone: timezone });
      return timezone;
    } catch {
      return undefined;
    }
  }

  function fmtPower(watts) {
    if (Math.abs(watts) >= 1000) return `${fmtNumber(watts / 1000, 2)} kW`;
    return `${fmtNumber(watts, Math.abs(watts) >= 10 ? 0 : 1)} W`;
  }

  function clockText(t, zone) {
    return new Date(t * 1000).toLocaleTimeString(i18n.locale(), { hour: "2-digit", minute: "2-digit", timeZone: zone });
  }

  // Redrawn at the card's width when it changes (a phone turned, a window resized).
  const chartSizes = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = entry.target.chart;
      const width = Math.floor(entry.contentRect.width);
      if (chart && width > 0 && Math.abs(chart.width - width) > 1) chart.setSize({ width, height: chart.height });
    }
  });

  function mountChart(box, make) {
    const width = Math.max(240, Math.floor(box.clientWidth || 320));
    box.chart = make(width, box);
    chartSizes.observe(box);
    return box.chart;
  }

  async function renderEnergy() {
    const root = $("energy");
    // The charts drawn before are let go of: their canvases, listeners and size watching.
    chartSizes.disconnect();
    for (const box of root.querySelectorAll(".chart")) {
      if (box.chart) box.chart.destroy();
    }
    root.replaceChildren(el("p", { className: "muted", text: t("common.loading") }));
    const days = $("energy-days").value;
    const price = $("energy-price").value;
    const query = new URLSearchParams({ days });
    if (price !== "") query.set("price", price);
    let energy;
    let uPlot;
    try {
      [energy, uPlot] = await Promise.all([api("GET", `/api/energy?${query}`), loadUplot()]);
    } catch (err) {
      root.replaceChildren(el("p", { className: "error", text: err.message }));
      return;
    }
    // The gateway's clock, not the browser's: `hearth demo` runs a simulated day at 60x.
    heardTime(energy.now);
    const now = typeof energy.now === "number" ? energy.now : gatewayNow();
    const zone = zoneOr(energy.timezone);
    const bars = el("div", { className: "chart bars", role: "img",
                             "aria-label": t("energy.bars_label", { days: energy.days.map((d, i) =>
                               `${d.slice(5)} ${fmtNumber(energy.total_kwh_per_day[i], 2)} kWh`).join(", ") }) });
    const parts = [];
    parts.push(el("section", { className: "card energy-days" },
      el("h3", {}, textWith("energy.per_day_heading", { timezone: el("span", { text: energy.timezone, translate: false }) })),
      bars,
      el("p", {}, t("energy.total", { kwh: fmtNumber(energy.total_kwh, 2) }),
        energy.total_cost !== null
          ? ` · ${t("energy.about_cost", { cost: fmtNumber(energy.total_cost, 2), currency: energy.currency })}` : "",
        energy.price_per_kwh !== null
          ? ` ${t("energy.at_price", { price: fmtNumber(energy.price_per_kwh, 4), currency: energy.currency })}`
          : ` · ${t("energy.set_price")}`),
      energyTable(energy)));
    // One chart per device that measures power: its total, or the sum of its phases or channels (powerPlan).
    const meters = [...state.devices.values()].map((device) => ({ device, plan: powerPlan(device) }))
      .filter((m) => m.plan.components.length)
      .sort((a, b) => shownName(a.device).localeCompare(shownName(b.device)));
    const charts = el("section", { className: "power-charts" },
      el("h3", { text: t("energy.power_heading", { time: clockText(now, zone) }) }));
    if (!meters.length) charts.append(el("p", { className: "muted", text: t("energy.no_power") }));
    parts.push(charts);
    root.replaceChildren(...parts);
    mountChart(bars, (width, target) => barChart(uPlot, energy, width, target));
    const since = now - DAY_S;
    await Promise.all(meters.map(async ({ device, plan }) => {
      const title = () => [el("h4", { text: shownName(device), translate: false }),
        plan.summed ? el("p", { className: "muted sum", text: t("energy.sum_of", { parts: partsText(device, plan) }) })
          : null]
        .filter(Boolean);
      const card = el("article", { className: "card power", dataset: { device: device.id } },
        title(), el("p", { className: "muted", text: t("common.loading") }));
      charts.append(card);
      try {
        const series = await Promise.all(plan.components.map(async (component) => {
          const query = (extra) => new URLSearchParams({ device: device.id, component, capability: "power_meter",
                                                         attribute: "watts", ...extra });
          // The changes of the last 24 h, and the last one before them (the value the chart starts with).
          const data = await api("GET", `/api/history?${query({ since: String(since), until: String(now),
                                                                  limit: "20000", initial: "1" })}`);
          return (data.initial ? [{ ...data.initial, t: since }] : []).concat(data.rows);
        }));
        const rows = (series.length === 1 ? series[0] : sumSeries(series)).filter((r) => typeof r.value === "number");
        if (!rows.length) {
          card.replaceChildren(...title(), el("p", { className: "muted", text: t("energy.no_readings") }));
          return;
        }
        const peak = rows.reduce((a, b) => (b.value > a.value ? b : a));
        const last = rows[rows.length - 1].value;
        const box = el("div", {
          className: "chart line", role: "img", dataset: { since: String(since), until: String(now) },
          "aria-label": t("energy.power_label", { peak: fmtPower(peak.value),
                                                  at: clockText(Math.max(peak.t, since), zone), now: fmtPower(last) }),
        });
        card.replaceChildren(...title(), box);
        mountChart(box, (width, target) => powerChart(uPlot, rows, since, now, zone, width, target));
      } catch (err) {
        card.replaceChildren(...title(), el("p", { className: "error", text: err.message }));
      }
    }));
  }

  // Step series (each value holds until the next) added up: at each change, the sum of every part's latest
  // value. A part counts from its first reading on.
  function sumSeries(series) {
    const changes = series.flatMap((rows, part) => rows.filter((r) => typeof r.value === "number")
      .map((r) => ({ t: r.t, part, value: r.value }))).sort((a, b) => a.t - b.t);
    const latest = new Map();
    const sums = [];
    changes.forEach((change, i) => {
      latest.set(change.part, change.value);
      if (i + 1 < changes.length && changes[i + 1].t === change.t) return;
      sums.push({ t: change.t, value: [...latest.values()].reduce((a, b) => a + b, 0) });
    });
    return sums;
  }

  // The colours of the page (light or dark), for the canvas.
  function chartColours() {
    const style = getComputedStyle(document.documentElement);
    const get = (name) => style.getPropertyValue(name).trim();
    return { accent: get("--accent"), text: get("--muted"), grid: get("--line") };
  }

  function axis(colours, extra) {
    return { stroke: colours.text, grid: { stroke: colours.grid, width: 1 }, ticks: { stroke: colours.grid, width: 1 },
             font: "12px system-ui, sans-serif", labelFont: "12px system-ui, sans-serif", ...extra };
  }

  // kWh per day as bars, the unit on the axis and in the legend.
  function barChart(uPlot, energy, width, target) {
    const colours = chartColours();
    const xs = energy.days.map((_, i) => i);
    // As much of the day as fits under its bar: "Sun 29", "Sun", or "29" (a month on a phone).
    const dayLabel = (u, i) => {
      const day = energy.days[Math.round(i)];
      if (!day) return "";
      const band = u.bbox.width / (window.devicePixelRatio || 1) / Math.max(1, xs.length);
      const style = band >= 60 ? { weekday: "short", day: "numeric" } : xs.length <= 7 ? { weekday: "short" }
        : { day: "numeric" };
      return new Date(`${day}T12:00:00Z`).toLocaleDateString(i18n.locale(), { ...style, timeZone: "UTC" });
    };
    return new uPlot({
      width, height: 200, padding: [12, 12, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { show: true },
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] },
                y: { range: (u, min, max) => [0, Math.max(0.1, max * 1.1)] } },
      axes: [
        // Every day when there is room; else every other, every third… counted back from today.
        axis(colours, { splits: (u) => {
          const band = u.bbox.width / (window.devicePixelRatio || 1) / Math.max(1, xs.length);
          const step = Math.max(1, Math.ceil(30 / band));
          return xs.filter((i) => (xs.length - 1 - i) % step === 0);
        }, values: (u, splits) => splits.map((i) => dayLabel(u, i)), grid: { show: false },
                        size: 36 }),
        axis(colours, { label: "kWh", labelSize: 18, size: 48,
                        values: (u, splits) => splits.map((v) => fmtNumber(v, 1)) }),
      ],
      series: [
        { label: t("energy.legend_day"), value: (u, v) => (v === null || v === undefined ? "–" : energy.days[v] || "–") },
        { label: t("energy.legend_used"), fill: colours.accent, stroke: colours.accent, width: 0, points: { show: false },
          paths: uPlot.paths.bars({ size: [0.6, 48] }),
          value: (u, v) => (v === null || v === undefined ? "–" : `${fmtNumber(v, 2)} kWh`) },
      ],
    }, [xs, energy.total_kwh_per_day], target);
  }

  // Power as the steps it is: a reading holds until the next one (a kettle's 2 kW for 3 minutes is a
  // 3-minute block), on the gateway's clock and in the house's time zone. Drag across it to zoom in, double-
  // click to see the whole day again.
  function powerChart(uPlot, rows, since, until, zone, width, target) {
    const colours = chartColours();
    const xs = rows.map((r) => Math.max(r.t, since));
    const ys = rows.map((r) => r.value);
    // The last reading holds until now; before the first one (a new device) there is nothing to draw.
    xs.push(until);
    ys.push(ys[ys.length - 1]);
    if (xs[0] > since) {
      xs.unshift(since);
      ys.unshift(null);
    }
    const max = Math.max(...ys, 1);
    return new uPlot({
      width, height: 180, padding: [12, 12, 0, 0],
      tzDate: zone ? (t) => uPlot.tzDate(new Date(t * 1000), zone) : undefined,
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { show: true },
      // The x range is the data's (since … until): zooming in (drag, or setScale) can change it.
      scales: { x: { time: true }, y: { range: [0, max * 1.1] } },
      axes: [
        axis(colours, { size: 36, values: (u, splits) => splits.map((t) => clockText(t, zone)) }),
        axis(colours, { size: max >= 1000 ? 64 : 56, values: (u, splits) => splits.map((v) => fmtPower(v)) }),
      ],
      series: [
        { label: t("energy.legend_time"), value: (u, t) => (t === null || t === undefined ? "–" : clockText(t, zone)) },
        { label: label("power_meter", "watts"), stroke: colours.accent, width: 1.5, fill: `${colours.accent}40`,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false },
          value: (u, v) => (v === null || v === undefined ? "–" : fmtPower(v)) },
      ],
    }, [xs, ys], target);
  }

  // Devices as rows and days as columns, the newest day first: on a phone the device name stays put at
  // the left and the days scroll under the total.
  function energyTable(energy) {
    const order = energy.days.map((_, i) => i).reverse();
    const dayHead = (day) => {
      const date = new Date(`${day}T12:00:00Z`);
      return el("th", { scope: "col", title: day },
        el("span", { className: "weekday",
                     text: date.toLocaleDateString(i18n.locale(), { weekday: "short", timeZone: "UTC" }) }),
        " ", date.toLocaleDateString(i18n.locale(), { day: "numeric", month: "numeric", timeZone: "UTC" }));
    };
    const head = el("tr", {}, el("th", { scope: "col", text: t("energy.device") }),
      el("th", { scope: "col", text: t("energy.total_column") }),
      energy.price_per_kwh !== null ? el("th", { scope: "col", text: energy.currency }) : null,
      order.map((i) => dayHead(energy.days[i])));
    const rows = energy.devices.map((d) => {
      const device = state.devices.get(d.id);
      return el("tr", {}, el("th", { scope: "row", text: device ? shownName(device) : d.name, translate: false }),
        el("td", { className: "total", text: fmtNumber(d.total_kwh, 2) }),
        d.cost !== null ? el("td", { text: fmtNumber(d.cost, 2) }) : null,
        order.map((i) => el("td", { text: fmtNumber(d.kwh[i], 2) })));
    });
    if (!rows.length) return el("p", { className: "muted", text: t("energy.no_meters") });
    return el("div", { className: "table-scroll", tabIndex: 0, role: "region", "aria-label": t("energy.table_label") },
      el("table", { className: "energy-table" }, el("caption", { className: "muted", text: t("energy.table_caption") }),
        el("thead", {}, head), el("tbody", {}, rows)));
  }

  // ------------------------------------------------------------------ the Matter bridge

  function matterStateText(value) {
    const texts = { starting: t("matter.state.starting"), running: t("matter.state.running"),
      restarting: t("matter.state.restarting"), failed: t("matter.state.failed"), stopped: t("matter.state.stopped") };
    return texts[value] || String(value);
  }

  async function renderMatter() {
    const root = $("matter-panel");
    let data;
    try {
      data = await api("GET", "/api/matter");
    } catch (err) {
      root.replaceChildren(el("p", { className: "muted", text: err.message }));
      return;
    }
    if (!data.enabled) {
      root.replaceChildren(el("p", { className: "muted" }, t("matter.off"), " ",
        el("code", { text: "[matter] enabled = true" })));
      return;
    }
    const row = (label, props) => el("div", { className: "reading" }, el("dt", { text: label }), el("dd", props));
    const unmapped = (data.unmapped || []).filter((d) => !d.bridged);
    root.replaceChildren(el("article", { className: "card matter" },
      el("dl", {},
        row(t("matter.state"), { text: matterStateText(data.state) }),
        row(t("matter.code"), { text: data.pairing.manual_code_formatted, translate: false, className: "code" }),
        row(t("matter.qr"), { text: data.pairing.qr_payload, translate: false, className: "code" }),
        row(t("matter.controllers"), { text: String(data.fabrics) }),
        row(t("matter.endpoints"), { text: String(data.endpoints) })),
      el("p", { className: "muted", text: t("matter.help") }),
      ...(unmapped.length ? [el("p", { className: "muted" }, t("matter.not_bridged"), " ",
        ...unmapped.map((d, i) => el("span", { translate: false, text: (i ? ", " : "") + d.name })))] : [])));
  }

  // ------------------------------------------------------------------ discovered

  async function renderDiscovered() {
    const root = $("discovered");
    root.replaceChildren(el("p", { className: "muted", text: t("common.loading") }));
    let data;
    try {
      data = await api("GET", "/api/discovered");
    } catch (err) {
      root.replaceChildren(el("p", { className: "muted", text: err.status === 404
        ? t("discovered.not_running") : err.message }));
      return;
    }
    const list = Array.isArray(data) ? data : (data.discovered || data.devices || data.services || []);
    const off = data.mdns === "off"
      ? el("p", { className: "notice mdns-off", role: "status" },
        el("strong", { text: t("discovered.off") }), " ", t("discovered.off_explain"), " ",
        el("code", { text: "[adapters.mdns] enabled = true" }), " ", el("code", { text: "[mdns] enabled = true" }), " ",
        ...textWith("discovered.off_demo", { command: el("code", { text: "hearth demo" }) }))
      : null;
    if (!list.length) {
      const empty = el("p", { className: "muted", text: off ? t("discovered.nothing_to_show") : t("discovered.nothing_yet") });
      root.replaceChildren(...[off, empty].filter(Boolean));
      return;
    }
    root.replaceChildren(...(off ? [off] : []), ...list.map((item) => el("article", { className: "card discovered" },
      el("h3", { text: item.name || item.id || item.type || t("discovered.device"), translate: false }),
      el("dl", { className: "readings" }, Object.entries(item).filter(([k]) => k !== "name").map(([k, v]) =>
        el("div", { className: "reading" }, el("dt", { text: discoveredField(k) }),
          el("dd", discoveredValue(k, v))))))));
  }

  // A record's field in words ("last_seen" -> "Last seen"), from the catalogue; one it does not know keeps its name.
  function discoveredField(name) {
    const key = `discovered.field.${name}`;
    const text = t(key);
    return text === key ? name : text;
  }

  // Its value: the words the catalogue has for a known one (support "seen only", available true), times in the
  // reader's way; addresses, names and the device's own records as they are (translate="no").
  function discoveredValue(name, value) {
    if (typeof value === "boolean") return { text: value ? t("common.yes") : t("common.no") };
    if (value === null || value === undefined) return { text: "–" };
    if ((name === "first_seen" || name === "last_seen") && typeof value === "string") {
      return { text: fmtTime(value), title: value };
    }
    if (name === "support" || name === "family") {
      const key = `discovered.${name}.${String(value).replaceAll(" ", "_")}`;
      const text = t(key);
      if (text !== key) return { text };
    }
    return { text: typeof value === "object" ? JSON.stringify(value) : String(value), translate: false };
  }

  // ------------------------------------------------------------------ start

  function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    connect();
    route();
    // "since 23:50" becomes "since yesterday 23:50" at midnight.
    if (!start.clock) start.clock = setInterval(renderOccupancy, 60000);
  }

  function init() {
    // The login page in the browser's language; once someone is logged in, in theirs.
    i18n.use(i18n.browserLanguage());
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("login-submit");
      button.disabled = true;
      const remember = $("login-remember").checked;
      const token = $("login-token").value.trim();
      const username = $("login-username").value.trim();
      try {
        if (!token && (!username || !$("login-password").value)) throw new Error(t("login.give_name"));
        const ok = token ? await loginWithToken(token, remember)
          : await login(username, $("login-password").value, remember);
        $("login-token").value = "";
        $("login-password").value = "";
        if (ok) start();
      } catch (err) {
        showLogin(err.message);
      } finally {
        button.disabled = false;
      }
    });
    $("setup-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("setup-error");
      const password = $("setup-password").value;
      error.hidden = true;
      try {
        if (password !== $("setup-password2").value) throw new Error(t("setup.passwords_differ"));
        const me = await window.HearthSession.createOwner($("setup-username").value.trim(), password);
        $("setup-password").value = "";
        $("setup-password2").value = "";
        $("setup-form").hidden = true;
        if (await loggedIn(me)) start();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    });
    $("logout").addEventListener("click", () => logout());
    $("language-select").addEventListener("change", chooseLanguage);
    $("house-filter").addEventListener("input", renderHouse);
    $("mode-select").addEventListener("change", async (event) => {
      try {
        const data = await api("PUT", "/api/mode", { mode: event.target.value });
        state.mode = data.mode;
      } catch (err) {
        toast(err.message, true);
        event.target.value = state.mode;
      }
    });
    $("energy-refresh").addEventListener("click", renderEnergy);
    $("energy-days").addEventListener("change", renderEnergy);
    $("edit-form").addEventListener("submit", (event) => { event.preventDefault(); saveEdit(false); });
    $("edit-reset").addEventListener("click", () => saveEdit(true));
    $("edit-cancel").addEventListener("click", () => $("edit-dialog").close());
    $("resolve-form").addEventListener("submit", (event) => { event.preventDefault(); saveResolve(); });
    $("area-form").addEventListener("submit", (event) => { event.preventDefault(); saveArea(false); });
    $("area-reset").addEventListener("click", () => saveArea(true));
    $("area-cancel").addEventListener("click", () => $("area-dialog").close());
    $("resolve-cancel").addEventListener("click", () => $("resolve-dialog").close());
    $("resolve-dialog").addEventListener("close", () => { state.resolving = null; });
    window.addEventListener("hashchange", () => { if (state.me) route(); });

    // A login link (#token=...) from `hearth demo`: the fragment never reaches the server; it is
    // taken out of the address bar at once.
    const fromLink = (location.hash.match(/^#token=([\w-]+)$/) || [])[1];
    if (fromLink) {
      history.replaceState(null, "", `${location.pathname}#/house`);
      loginWithToken(fromLink, true).then((ok) => { if (ok) start(); }, (err) => showLogin(err.message));
      return;
    }
    // A session cookie from before (kept across gateway restarts) logs in without asking.
    window.HearthSession.me().then(async (me) => {
      if (me) { if (await loggedIn(me)) start(); return; }
      const token = storedToken();
      forgetStoredToken();
      if (!token) { showLogin(); return; }
      try {
        if (await loginWithToken(token, true)) start();
      } catch (err) {
        showLogin(err.message);
      }
    }, () => showLogin(t("top.unreachable")));
  }

  document.addEventListener("DOMContentLoaded", init);
})();
