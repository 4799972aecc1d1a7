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

  const state = {
    token: null,
    me: null,
    devices: new Map(), // id -> device (GET /api/devices shape)
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
    busy: new Set(), // device ids whose slider is being dragged: not redrawn under the finger
    openTraces: new Set(),
    showResolved: false, // the resolved alerts' list is unfolded
    resolving: null, // the alert id the resolve dialog is for
    // Ids changed by WebSocket events while a GET of the same list is in flight: the GET's answer may
    // be older than the event, so for these the event wins.
    watchers: { alerts: new Set(), scenes: new Set() },
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
    return date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  // A day and a time as people say them: {day: null (today) | "yesterday" | "Mar 8", time: "10:01"}.
  function dayAndTime(value) {
    if (value === null || value === undefined) return null;
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return null;
    const now = new Date();
    const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
    // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
    const daysAgo = Math.round((midnight(now) - midnight(date)) / 86400000);
    const time = date.toLocaleTimeString([], { timeStyle: "short" });
    let day = null;
    if (daysAgo === 1) day = "yesterday";
    else if (daysAgo !== 0) {
      day = date.toLocaleDateString([], date.getFullYear() === now.getFullYear()
        ? { month: "short", day: "numeric" } : { dateStyle: "medium" });
    }
    return { day, time };
  }

  // "10:01", "yesterday 10:01", "Mar 8 10:01": after "since".
  function fmtSince(value) {
    const when = dayAndTime(value);
    if (!when) return "";
    return when.day ? `${when.day} ${when.time}` : when.time;
  }

  // "at 10:01", "yesterday at 10:01", "on Mar 8 at 10:01".
  function fmtAt(value) {
    const when = dayAndTime(value);
    if (!when) return "";
    if (!when.day) return `at ${when.time}`;
    return when.day === "yesterday" ? `yesterday at ${when.time}` : `on ${when.day} at ${when.time}`;
  }

  // The engine's reasons are lower-case phrases ("movement in kitchen/motion (kitchen)"); shown as sentences.
  function sentence(text) {
    if (!text) return "";
    const value = String(text);
    return value.charAt(0).toUpperCase() + value.slice(1);
  }

  // ["a"] -> "a", ["a", "b", "c"] -> "a, b and c".
  function joinNames(names) {
    if (names.length < 2) return names.join("");
    return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  }

  function fmtNumber(value, digits) {
    if (typeof value !== "number") return String(value);
    return value.toLocaleString([], { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  // ------------------------------------------------------------------ HTTP

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}` };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("application/json")) data = await response.json();
    if (response.status === 401) {
      logout("Your token is no longer valid. Log in again.");
      throw new ApiError(401, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // ------------------------------------------------------------------ login

  function storedToken() {
    return localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY);
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("login-token").focus();
  }

  async function login(token, remember) {
    const response = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      cache: "no-store",
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 429) {
      throw new Error(`Too many failed attempts. Try again in ${response.headers.get("Retry-After") || 60} s.`);
    }
    if (!response.ok || !data.ok) throw new Error("That token is not valid (or was revoked).");
    state.token = token;
    state.me = data.name;
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
    return data;
  }

  function logout(message) {
    localStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
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
    setConn("connecting…", "");
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: state.token }));
    ws.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      onMessage(data);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      for (const pending of state.pending.values()) pending.resolve({ ok: false, error: "connection lost" });
      state.pending.clear();
      if (event.code === 4401 || event.code === 4403) { logout("Log in again (the token was not accepted)."); return; }
      // Back off: 1 s, 2 s, 4 s … at most 30 s. A slow-client drop (4008) reconnects the same way
      // and takes a fresh snapshot.
      const delay = Math.min(30000, 1000 * 2 ** state.wsRetry);
      state.wsRetry += 1;
      setConn(event.code === 4429 ? "too many failed logins, waiting…" : "reconnecting…", "down");
      setTimeout(() => { if (state.token && !state.ws) connect(); }, delay);
    };
  }

  function setConn(text, cls) {
    const conn = $("conn");
    conn.textContent = text;
    conn.className = `conn ${cls}`;
  }

  function send(message) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ ok: false, error: "not connected to the gateway" });
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
      setConn("live", "live");
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
        refreshAlerts();
        refreshScenes();
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

  function onEvent(event) {
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
      toast(`${device.name}: ${result.error || result.message || "command failed"}`, true);
    } else if (result.status === "timeout") {
      toast(`${device.name}: sent, but the device did not confirm`, true);
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
    if (state.page === "discovered") renderDiscovered();
  }

  // ------------------------------------------------------------------ who is home

  const OCCUPANCY_WORDS = {
    home: "Somebody is home", away: "Nobody is home", unknown: "Not sure if anybody is home",
  };
  const OCCUPANCY_SHORT = { home: "somebody home", away: "nobody home", unknown: "not sure" };

  function renderOccupancy() {
    const box = $("occupancy");
    const house = state.house;
    if (!house || !house.occupancy) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.dataset.occupancy = house.occupancy;
    $("occupancy-state").textContent = OCCUPANCY_WORDS[house.occupancy] || house.occupancy;
    const since = $("occupancy-since");
    since.textContent = house.since ? `since ${fmtSince(house.since)}` : "";
    since.title = house.since ? fmtTime(house.since) : "";
    $("occupancy-reason").textContent = sentence(house.reason);
    // The history starts with the current state (when it changed since the gateway started).
    const earlier = (house.history || []).filter((h) => !(h.t === house.since && h.state === house.occupancy))
      .slice(0, 5);
    $("occupancy-history").replaceChildren(...(earlier.length
      ? earlier.map((h) => el("li", {}, el("span", { className: "when", text: fmtSince(h.t), title: fmtTime(h.t) }),
        ` · ${OCCUPANCY_SHORT[h.state] || h.state} · ${sentence(h.reason)}`))
      : [el("li", { className: "muted", text: "No earlier changes since the gateway started." })]));
  }

  // ------------------------------------------------------------------ house

  // Units: by "capability.attribute", else by attribute, else by the attribute's suffix (the model names
  // its attributes by unit: lel_percent, co_ppm, hcho_ugm3, depth_m, used_h, duration_s).
  const UNITS = { "gas.lel_percent": "% LEL" };
  const ATTRIBUTE_UNITS = {
    celsius: "°C", percent: "%", watts: "W", kwh: "kWh", volts: "V", amps: "A", hertz: "Hz", lux: "lx", hpa: "hPa",
    kelvin: "K", ppm: "ppm",
  };
  const SUFFIX_UNITS = [["_celsius", "°C"], ["_percent", "%"], ["_kwh", "kWh"], ["_ppm", "ppm"], ["_ppb", "ppb"],
    ["_ugm3", "µg/m³"], ["_dbm", "dBm"], ["_m", "m"], ["_s", "s"], ["_h", "h"]];

  function unitOf(capability, attribute) {
    const key = `${capability}.${attribute}`;
    if (key in UNITS) return UNITS[key];
    if (attribute in ATTRIBUTE_UNITS) return ATTRIBUTE_UNITS[attribute];
    const suffix = SUFFIX_UNITS.find(([end]) => attribute.endsWith(end));
    return suffix ? suffix[1] : "";
  }

  const BOOLEAN_WORDS = {
    "occupancy.occupied": ["motion", "clear"], "contact.open": ["open", "closed"], "water_leak.leak": ["LEAK", "dry"],
    "smoke_co_alarm.smoke": ["SMOKE", "no smoke"], "smoke_co_alarm.co": ["CO!", "no CO"], "gas.detected": ["GAS", "no gas"],
    "vibration.detected": ["vibration", "still"], "tamper.tampered": ["tampered", "ok"],
    "battery.low": ["low", "ok"], "connectivity.online": ["online", "offline"],
    "presence.present": ["present", "away"], "lock.door_open": ["open", "closed"],
    "valve.open": ["open", "closed"], "fan.on": ["on", "off"], "siren.on": ["sounding", "silent"],
    "filter.replace": ["replace now", "ok"], "thermostat.window_open": ["open, heating paused", "closed"],
  };
  // Enum values as words, where the model's own word is not one.
  const ENUM_WORDS = {
    "thermostat.mode": { heat_cool: "heat/cool", fan_only: "fan only" },
  };
  // Readings that need someone, shown in red; and those worth knowing, shown in amber.
  const ALARMS = new Set(["water_leak.leak", "smoke_co_alarm.smoke", "smoke_co_alarm.co", "gas.detected",
                          "battery.low", "tamper.tampered", "filter.replace"]);

  function severity(key, value) {
    if (value === true && ALARMS.has(key)) return "bad";
    if (key === "water_level.state" && (value === "low" || value === "high")) return "bad";
    if (key === "thermostat.window_open" && value === true) return "note";
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
    return isPhase(device, component) ? `Phase ${component.toUpperCase()}` : component;
  }

  // "phases L1, L2 and L3" (main being the first phase when the others start at the second) or
  // "main, switch_1 and switch_2".
  function partsText(device, plan) {
    const phases = plan.components.filter((c) => isPhase(device, c));
    if (phases.length && plan.components.every((c) => isPhase(device, c) || c === "main")) {
      const first = phases.some((c) => c.startsWith("l")) ? "L1" : "A";
      return `phases ${joinNames(plan.components.map((c) => (c === "main" ? first : c.toUpperCase())))}`;
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

  // ----- house

  function renderHouse() {
    const root = $("house");
    const filter = $("house-filter").value.trim().toLowerCase();
    const byArea = new Map();
    for (const device of [...state.devices.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (filter && !`${device.name} ${device.area || ""} ${device.model || ""}`.toLowerCase().includes(filter)) continue;
      const area = device.area || "";
      if (!byArea.has(area)) byArea.set(area, []);
      byArea.get(area).push(device);
    }
    const areas = [...byArea.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
    state.tiles.clear();
    const sections = areas.map((area) => el("section", { className: "area", dataset: { area } },
      el("h2", { text: area || "No area" }),
      el("div", { className: "tiles" }, byArea.get(area).map((device) => {
        const tile = el("article", { className: "tile", dataset: { device: device.id } });
        state.tiles.set(device.id, tile);
        fillTile(tile, device);
        return tile;
      }))));
    if (!sections.length) {
      sections.push(el("p", { className: "muted", text: state.devices.size ? "No device matches." :
        "No devices yet. They appear here as soon as an adapter finds them." }));
    }
    root.replaceChildren(...sections);
    const list = $("area-list");
    list.replaceChildren(...[...new Set([...state.devices.values()].map((d) => d.area).filter(Boolean))].sort()
      .map((area) => el("option", { value: area })));
  }

  function updateTile(device) {
    const tile = state.tiles.get(device.id);
    if (!tile) { renderHouse(); return; }
    if (state.busy.has(device.id)) { tile.dataset.stale = "1"; return; }
    fillTile(tile, device);
  }

  function fillTile(tile, device) {
    delete tile.dataset.stale;
    tile.classList.toggle("offline", device.available === false);
    const head = el("header", { className: "tile-head" },
      el("h3", { className: "device-name", text: device.name, title: device.id }),
      el("button", { type: "button", className: "icon edit", title: "Rename, area, tags",
                     "aria-label": `Edit ${device.name}`, onclick: () => openEdit(device.id) }, "✎"));
    const meta = el("p", { className: "device-meta muted" },
      [device.manufacturer, device.model].filter(Boolean).join(" · ") || device.source,
      device.available === false ? el("span", { className: "pill bad", text: "offline" }) : null);
    const tags = (device.tags || []).length
      ? el("p", { className: "tags" }, device.tags.map((tag) => el("span", { className: "pill tag", text: tag })))
      : null;
    const body = el("div", { className: "tile-body" });
    const components = Object.keys(device.components || {}).sort(byComponent);
    // A meter whose power is the sum of its phases or channels: the sum first, each part under it.
    const plan = powerPlan(device);
    const total = summedPower(device, plan);
    if (total !== null) {
      body.append(el("dl", { className: "readings total" },
        el("div", { className: "reading", dataset: { key: "power_meter.total_watts" } },
          el("dt", { text: "Total power" }),
          el("dd", { text: `${fmtNumber(total)} W`, title: `the sum of ${partsText(device, plan)}` }))));
    }
    for (const component of components) {
      const caps = device.components[component];
      const block = el("div", { className: "component", dataset: { component } });
      if (components.length > 1) block.append(el("p", { className: "component-name", text: componentTitle(device, component) }));
      const shown = new Set();
      block.append(...controlsFor(device, component, caps, shown));
      const readings = readingsFor(caps, shown);
      if (readings.length) block.append(el("dl", { className: "readings" }, readings));
      body.append(block);
    }
    tile.replaceChildren(...[head, meta, tags, body].filter(Boolean));
  }

  function switchButton(device, component, capability, on, words, onclick) {
    return el("button", {
      type: "button", className: `switch ${capability} ${on ? "on" : ""}`, role: "switch", "aria-checked": String(on),
      "aria-label": `${device.name} ${component} ${capability === "on_off" ? "power" : capability}`,
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
    return step === 0 ? "off" : `${step} of ${steps}`;
  }

  // Fans with few speeds get a button per speed; others (or one that does not say) a slider.
  const MAX_STEP_BUTTONS = 10;

  function fanControl(device, component, caps) {
    const fan = caps.fan;
    const steps = fanSteps(fan);
    const set = (percent) => command(device, component, "fan", "set_speed", { percent });
    if (!steps || steps > MAX_STEP_BUTTONS) {
      return slider(device, component, "Fan speed", fan.speed_percent, [0, 100], 1, "%", set);
    }
    const current = typeof fan.speed_percent === "number" ? fanStep(fan.speed_percent, steps) : null;
    // Off is the power switch's, when the fan has one; set_speed 0 otherwise.
    const hasSwitch = "on_off" in caps && supports(device, component, "on_off", "off");
    const offered = [...(hasSwitch ? [] : [0]), ...Array.from({ length: steps }, (_, i) => i + 1)];
    return el("div", { className: "fan", role: "group", "aria-label": `${device.name} fan speed` },
      el("span", { className: "label", text: "Fan speed" }),
      el("output", { className: "fan-speed", text: fanSpeedText(fan) }),
      el("div", { className: "buttons steps" }, offered.map((step) => el("button", {
        type: "button", className: "step", text: step === 0 ? "Off" : String(step),
        "aria-pressed": String(step === current),
        "aria-label": step === 0 ? "Fan off" : `Fan speed ${step} of ${steps}`,
        // The percentage at or just under the speed: a device goes to the nearest speed at or above it.
        onclick: () => set(Math.floor((step * 100) / steps)),
      }))));
  }

  function controlsFor(device, component, caps, shown) {
    const controls = [];
    if ("on_off" in caps && supports(device, component, "on_off", "on")) {
      const on = caps.on_off.on === true;
      controls.push(switchButton(device, component, "on_off", on, ["On", "Off"],
        () => command(device, component, "on_off", on ? "off" : "on")));
    }
    if ("siren" in caps && supports(device, component, "siren", "on") && supports(device, component, "siren", "off")) {
      const on = caps.siren.on === true;
      // On with the device's own tone, volume and duration; the tone it sounds shows as a reading.
      controls.push(switchButton(device, component, "siren", on, ["Sounding", "Silent"],
        () => command(device, component, "siren", on ? "off" : "on")));
      shown.add("siren.on");
    }
    if ("level" in caps && supports(device, component, "level", "set")) {
      controls.push(slider(device, component, "Brightness", caps.level.percent, [0, 100], 1, "%",
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
        controls.push(slider(device, component, "Position", caps.cover.position_percent, [0, 100], 1, "%",
          (value) => command(device, component, "cover", "set_position", { percent: value })));
      }
      const buttons = ["open", "stop", "close"].filter((c) => supports(device, component, "cover", c));
      if (buttons.length) {
        controls.push(el("div", { className: "buttons" }, buttons.map((c) => el("button", {
          type: "button", text: c, onclick: () => command(device, component, "cover", c) }))));
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
        el("span", { className: "label", text: "Target" }),
        el("button", { type: "button", className: "icon", "aria-label": "Lower target", onclick: () => step(-0.5) },
           "−"),
        el("output", { className: "target", text: typeof target === "number" ? `${fmtNumber(target)} °C` : "–" }),
        el("button", { type: "button", className: "icon", "aria-label": "Raise target", onclick: () => step(0.5) },
           "+")));
    }
    if ("lock" in caps) {
      const buttons = ["lock", "unlock"].filter((c) => supports(device, component, "lock", c));
      if (buttons.length) {
        controls.push(el("div", { className: "buttons" }, buttons.map((c) => el("button", {
          type: "button", text: c, onclick: () => command(device, component, "lock", c) }))));
      }
    }
    return controls;
  }

  function slider(device, component, label, value, range, step, unit, onSet) {
    const input = el("input", { type: "range", min: range[0], max: range[1], step,
                                value: typeof value === "number" ? value : range[0],
                                "aria-label": `${device.name} ${label}` });
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
    if (typeof value === "boolean" && BOOLEAN_WORDS[key]) return BOOLEAN_WORDS[key][value ? 0 : 1];
    if (value === null) return "unknown";
    if (typeof value === "number") {
      const unit = unitOf(capability, attribute);
      return `${fmtNumber(value, unit === "kWh" ? 2 : 1)}${unit ? ` ${unit}` : ""}`;
    }
    if (typeof value === "string" && ENUM_WORDS[key] && ENUM_WORDS[key][value]) return ENUM_WORDS[key][value];
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function readingsFor(caps, shown) {
    const items = [];
    for (const capability of Object.keys(caps).sort()) {
      for (const [attribute, value] of Object.entries(caps[capability])) {
        const key = `${capability}.${attribute}`;
        if (CONTROLLED.has(key) || HIDDEN.has(key) || (shown && shown.has(key))) continue;
        const level = severity(key, value);
        items.push(el("div", { className: `reading ${level}`, dataset: { key } },
          el("dt", { text: label(capability, attribute) }),
          el("dd", { text: readingText(caps, capability, attribute, value) })));
      }
    }
    return items;
  }

  const LABELS = {
    "temperature.celsius": "Temperature", "humidity.percent": "Humidity", "power_meter.watts": "Power",
    "power_meter.volts": "Voltage", "power_meter.amps": "Current", "power_meter.power_factor": "Power factor",
    "power_meter.hertz": "Frequency", "energy_meter.kwh": "Energy", "energy_meter.exported_kwh": "Energy exported",
    "battery.percent": "Battery", "battery.low": "Battery", "battery.volts": "Battery voltage",
    "illuminance.lux": "Light", "illuminance.percent": "Light level",
    "occupancy.occupied": "Motion", "contact.open": "Contact", "water_leak.leak": "Water leak",
    "smoke_co_alarm.smoke": "Smoke", "smoke_co_alarm.co": "Carbon monoxide", "smoke_co_alarm.co_ppm": "CO level",
    "gas.detected": "Gas", "gas.lel_percent": "Gas level", "gas.ppm": "Gas level",
    "siren.on": "Siren", "siren.tone": "Tone", "siren.volume_percent": "Volume", "siren.duration_s": "Sounds for",
    "soil_moisture.percent": "Soil moisture",
    "water_level.percent": "Tank level", "water_level.depth_m": "Depth", "water_level.state": "Level",
    "filter.life_percent": "Filter life left", "filter.replace": "Filter", "filter.used_h": "Filter used",
    "thermostat.current_celsius": "Room", "thermostat.mode": "Mode", "thermostat.running": "Running",
    "thermostat.window_open": "Window", "button.last_event": "Last press",
    "pressure.hpa": "Pressure", "connectivity.rssi_dbm": "Signal", "color_temperature.kelvin": "Colour temp.",
    "cover.tilt_percent": "Tilt", "cover.motion": "Moving", "lock.state": "Lock", "lock.door_open": "Door",
    "fan.on": "Fan", "fan.speed_percent": "Fan speed", "fan.preset": "Fan mode",
    "appliance.state": "State", "appliance.remaining_s": "Remaining", "air_quality.co2_ppm": "CO₂",
    "air_quality.pm1_ugm3": "PM1", "air_quality.pm25_ugm3": "PM2.5", "air_quality.pm10_ugm3": "PM10",
    "air_quality.voc_ppb": "VOC", "air_quality.voc_ugm3": "VOC", "air_quality.voc_index": "VOC index",
    "air_quality.hcho_ugm3": "Formaldehyde", "vibration.detected": "Vibration", "tamper.tampered": "Tamper",
    "valve.position_percent": "Valve", "valve.open": "Valve",
  };

  function label(capability, attribute) {
    return LABELS[`${capability}.${attribute}`] || `${capability.replaceAll("_", " ")} ${attribute.replaceAll("_", " ")}`;
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
    $("edit-area").placeholder = (base && base.area) || "no area";
    $("edit-tags").value = (overrides.tags || []).join(", ");
    $("edit-tags").placeholder = ((base && base.tags) || []).join(", ") || "no tags";
    $("edit-name-hint").textContent = `From the device: ${(base && base.name) || device.name}`;
    $("edit-area-hint").textContent = `From the device or config: ${(base && base.area) || "none"}`;
    $("edit-tags-hint").textContent = `From the config: ${((base && base.tags) || []).join(", ") || "none"}`;
    if (!dialog.open) dialog.showModal();
    $("edit-name").focus();
  }

  async function saveEdit(reset) {
    const value = (id) => $(id).value.trim();
    const tags = value("edit-tags").split(",").map((t) => t.trim()).filter(Boolean);
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
      toast("Saved");
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
      banner.replaceChildren(el("strong", { text: urgent.title }), " ", el("span", { text: urgent.message }), " ",
        el("button", { type: "button", className: "primary", text: "Acknowledge", onclick: () => ack(urgent.id) }),
        " ", el("a", { href: "#/alerts", text: open.length > 1 ? `all ${open.length} alerts` : "details" }));
    }
    const parts = [];
    if (open.length) {
      parts.push(el("section", { className: "alert-group open", dataset: { group: "open" } },
        el("h3", { text: "Needs attention" }), open.map(alertCard)));
    }
    if (handled.length) {
      parts.push(el("section", { className: "alert-group acknowledged", dataset: { group: "acknowledged" } },
        el("h3", { text: "Being looked after" }), handled.map(alertCard)));
    }
    if (!open.length && !handled.length) {
      const text = resolved.length ? "Nothing needs attention. All is well." : "No alerts. All is well.";
      parts.push(el("p", { className: "muted all-well", text }));
    }
    if (resolved.length) {
      const shown = resolved.slice(0, RESOLVED_SHOWN);
      parts.push(el("details", {
        className: "alert-group resolved", dataset: { group: "resolved" }, open: state.showResolved,
        ontoggle: (event) => { state.showResolved = event.target.open; },
      },
      el("summary", {}, `Resolved (${resolved.length})`),
      shown.map(alertCard),
      resolved.length > shown.length
        ? el("p", { className: "muted", text: `and ${resolved.length - shown.length} older` }) : null));
    }
    $("alerts").replaceChildren(...parts);
  }

  // Who did it, as a person reads it: "token:anna" is Anna's token.
  function who(by) {
    if (!by) return "someone";
    if (by.startsWith("token:")) return by.slice("token:".length);
    if (by.startsWith("scene:")) {
      const scene = state.scenes.get(by.slice("scene:".length));
      return scene ? `the scene ${scene.name}` : "a scene";
    }
    return by;
  }

  // The contacts who were sent the alert (and so are told when it is resolved).
  function toldTargets(alert) {
    return [...new Set((alert.notifications || []).filter((n) => n.kind !== "resolved").map((n) => n.target))];
  }

  function resolvedText(alert) {
    let text = `Resolved ${fmtAt(alert.resolved_at)}`;
    const by = alert.resolved_by || "";
    if (by === "situation ended") text += " by itself";
    else if (by && !by.startsWith("scene:")) text += ` by ${who(by)}`;
    const how = alert.resolution && alert.resolution !== "resolved by hand" ? alert.resolution : "";
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
      toldText = `Told ${joinNames(told)}${messages.length > told.length ? ` (${messages.length} messages)` : ""}`;
      if (failed) toldText += ` · ${failed} not delivered`;
    } else if (!(policy.contacts || []).length) {
      toldText = "Nobody to tell (no contacts)";
    }
    if (status === "open" && alert.next_escalation_at) {
      toldText += `${toldText ? " · " : ""}next message ${fmtAt(alert.next_escalation_at)}`;
    }
    const contacts = [...new Set(policy.contacts || [])];
    const buttons = [];
    if (status === "open") {
      buttons.push(el("button", { type: "button", className: "primary ack", text: "Acknowledge",
                                  onclick: () => ack(alert.id) }));
    }
    if (status !== "resolved") {
      buttons.push(el("button", { type: "button", className: `resolve ${status === "open" ? "" : "primary"}`,
                                  text: "Resolve", onclick: () => openResolve(alert.id) }));
    }
    return el("article", {
      className: `card alert ${alert.severity} ${status} ${needsAttention(alert) ? "attention" : ""}`,
      dataset: { alert: alert.id, state: status },
    },
    el("header", {},
      el("span", { className: `pill ${alert.severity}`, text: alert.severity }),
      el("h3", { text: alert.title })),
    el("p", { className: "message", text: alert.message }),
    el("p", { className: "muted raised", title: fmtTime(alert.raised_at) }, `Raised ${fmtAt(alert.raised_at)}`,
      alert.area ? ` · ${alert.area}` : ""),
    toldText ? el("p", { className: "muted told", text: toldText }) : null,
    alert.unanswered_at
      ? el("p", { className: `unanswered ${status === "resolved" ? "muted" : ""}`,
                  text: `Nobody answered: a last notice went to ${contacts.length ? joinNames(contacts) : "everyone"} `
                    + `${fmtAt(alert.unanswered_at)}.` })
      : null,
    alert.acknowledged_at
      ? el("p", { className: "handled",
                  text: `Acknowledged by ${who(alert.acknowledged_by)} ${fmtAt(alert.acknowledged_at)}` })
      : null,
    status === "acknowledged"
      ? el("p", { className: "muted", text: policy.resolves_itself
        ? "It resolves itself when things are back to normal, or resolve it here."
        : "Resolve it once it has been dealt with." })
      : null,
    status === "resolved" ? el("p", { className: "resolution", text: resolvedText(alert) }) : null,
    buttons.length ? el("div", { className: "buttons" }, buttons) : null);
  }

  function openResolve(alertId) {
    const alert = state.alerts.get(alertId);
    if (!alert) return;
    state.resolving = alertId;
    $("resolve-what").replaceChildren(el("strong", { text: alert.title }), " ", el("span", { text: alert.message }));
    $("resolve-note").value = "";
    const told = toldTargets(alert);
    $("resolve-hint").textContent = told.length
      ? `${sentence(joinNames(told))} will be told it is resolved.` : "Nobody else is told.";
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
      toast("Resolved");
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
      toast("Acknowledged");
    } catch (err) {
      toast(err.message, true);
    }
  }

  // ------------------------------------------------------------------ scenes

  async function refreshScenes() {
    const { changed, done } = watch("scenes");
    try {
      const data = await api("GET", "/api/scenes");
      state.scenes = merge(new Map(data.scenes.map((s) => [s.id, s])), state.scenes, changed);
      state.mode = data.mode;
      $("mode-select").value = data.mode;
    } catch (err) {
      if (err.status !== 404) return;
      state.scenes = new Map();
    } finally {
      done();
    }
    renderScenes();
  }

  function renderScenes() {
    const root = $("scenes");
    const scenes = [...state.scenes.values()].sort((a, b) => a.id.localeCompare(b.id));
    if (!scenes.length) {
      root.replaceChildren(el("p", { className: "muted", text: "No scenes. Add a profile in config.toml." }));
      return;
    }
    let profile = null;
    const nodes = [];
    for (const scene of scenes) {
      if (scene.profile !== profile) {
        profile = scene.profile;
        nodes.push(el("h3", { className: "profile", text: profile }));
      }
      const traces = el("div", { className: "traces", id: `traces-${scene.id}` });
      const open = state.openTraces.has(scene.id);
      nodes.push(el("article", { className: "card scene", dataset: { scene: scene.id } },
        el("header", {},
          el("h4", { text: scene.name }),
          el("label", { className: "toggle" },
            el("input", { type: "checkbox", checked: scene.enabled, "aria-label": `Enable ${scene.name}`,
                          onchange: (e) => setEnabled(scene.id, e.target.checked) }),
            scene.enabled ? "enabled" : "disabled")),
        scene.description ? el("p", { className: "muted", text: scene.description }) : null,
        el("p", { className: "muted" }, `triggers: ${scene.triggers.join(", ")}`,
          scene.last_run ? ` · last run ${fmtTime(scene.last_run.t)}: ${scene.last_run.result}` : " · not run yet",
          scene.running ? " · running" : ""),
        el("div", { className: "buttons" },
          el("button", { type: "button", text: "Run now", onclick: () => runScene(scene.id) }),
          el("button", { type: "button", className: "ghost", text: open ? "Hide runs" : "Show runs",
                         "aria-expanded": String(open), onclick: () => toggleTraces(scene.id) })),
        traces));
      if (open) loadTraces(scene.id, traces);
    }
    root.replaceChildren(...nodes);
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
      toast("Started");
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

  async function loadTraces(sceneId, box) {
    const target = box || document.getElementById(`traces-${sceneId}`);
    if (!target) return;
    let data;
    try {
      data = await api("GET", `/api/scenes/${encodeURIComponent(sceneId)}/traces`);
    } catch (err) {
      target.replaceChildren(el("p", { className: "error", text: err.message }));
      return;
    }
    if (!data.traces.length) {
      target.replaceChildren(el("p", { className: "muted", text: "No runs yet." }));
      return;
    }
    target.replaceChildren(...data.traces.slice(0, 10).map((trace) => el("details", { className: "trace" },
      el("summary", {}, `${fmtTime(trace.t)} · ${trace.trigger.kind}`,
        trace.trigger.device_id ? ` (${deviceName(trace.trigger.device_id)})` : "", ` → ${trace.result}`),
      trace.conditions.length ? el("ul", {}, trace.conditions.map((c) => el("li", { text: summarize(c) }))) : null,
      el("ol", {}, trace.actions.map((action) => el("li", { text: summarize(action) }))))));
  }

  function deviceName(id) {
    const device = state.devices.get(id);
    return device ? device.name : id;
  }

  // A trace entry as one line of text: its kind, then its fields.
  function summarize(entry) {
    const parts = [];
    for (const [key, value] of Object.entries(entry)) {
      if (key === "t") continue;
      parts.push(`${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
    }
    return parts.join(", ");
  }

  // ------------------------------------------------------------------ energy

  async function renderEnergy() {
    const root = $("energy");
    root.replaceChildren(el("p", { className: "muted", text: "Loading…" }));
    const days = $("energy-days").value;
    const price = $("energy-price").value;
    const query = new URLSearchParams({ days });
    if (price !== "") query.set("price", price);
    let energy;
    try {
      energy = await api("GET", `/api/energy?${query}`);
    } catch (err) {
      root.replaceChildren(el("p", { className: "error", text: err.message }));
      return;
    }
    const parts = [];
    parts.push(el("section", { className: "card energy-days" },
      el("h3", { text: `kWh per day (${energy.timezone})` }),
      barChart(energy.days, energy.total_kwh_per_day),
      el("p", {}, `Total ${fmtNumber(energy.total_kwh, 2)} kWh`,
        energy.total_cost !== null ? ` · about ${fmtNumber(energy.total_cost, 2)} ${energy.currency}` : "",
        energy.price_per_kwh !== null ? ` at ${energy.price_per_kwh} ${energy.currency}/kWh` :
          " · set a price to see the cost"),
      energyTable(energy)));
    // One chart per device that measures power: its total, or the sum of its phases or channels (powerPlan).
    const meters = [...state.devices.values()].map((device) => ({ device, plan: powerPlan(device) }))
      .filter((m) => m.plan.components.length).sort((a, b) => a.device.name.localeCompare(b.device.name));
    const charts = el("section", { className: "power-charts" }, el("h3", { text: "Power, last 24 hours" }));
    if (!meters.length) charts.append(el("p", { className: "muted", text: "No device measures power." }));
    parts.push(charts);
    root.replaceChildren(...parts);
    const now = Date.now() / 1000;
    await Promise.all(meters.map(async ({ device, plan }) => {
      const title = () => [el("h4", { text: device.name }),
        plan.summed ? el("p", { className: "muted sum", text: `Sum of ${partsText(device, plan)}` }) : null]
        .filter(Boolean);
      const card = el("article", { className: "card power", dataset: { device: device.id } },
        title(), el("p", { className: "muted", text: "Loading…" }));
      charts.append(card);
      try {
        const since = now - 86400;
        const series = await Promise.all(plan.components.map(async (component) => {
          const query = (extra) => new URLSearchParams({ device: device.id, component, capability: "power_meter",
                                                         attribute: "watts", ...extra });
          // The changes of the last 24 h, and the last one before them: the value the chart starts with.
          const [before, data] = await Promise.all([
            api("GET", `/api/history?${query({ since: String(since - 7 * 86400), until: String(since), limit: "1" })}`),
            api("GET", `/api/history?${query({ since: String(since), limit: "20000" })}`),
          ]);
          return before.rows.map((r) => ({ ...r, t: since })).concat(data.rows);
        }));
        const rows = series.length === 1 ? series[0] : sumSeries(series);
        card.replaceChildren(...title(), lineChart(rows, since, now, "W"));
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

  function energyTable(energy) {
    const head = el("tr", {}, el("th", { text: "Device" }),
      energy.days.map((d) => el("th", { text: d.slice(5) })), el("th", { text: "Total" }),
      energy.price_per_kwh !== null ? el("th", { text: energy.currency }) : null);
    const rows = energy.devices.map((d) => el("tr", {}, el("th", { scope: "row", text: d.name }),
      d.kwh.map((v) => el("td", { text: fmtNumber(v, 2) })), el("td", { text: fmtNumber(d.total_kwh, 2) }),
      d.cost !== null ? el("td", { text: fmtNumber(d.cost, 2) }) : null));
    if (!rows.length) return el("p", { className: "muted", text: "No device meters energy." });
    return el("div", { className: "table-scroll" }, el("table", { className: "energy-table" },
      el("thead", {}, head), el("tbody", {}, rows)));
  }

  function barChart(labels, values) {
    const width = 420;
    const height = 170;
    const pad = { left: 36, right: 8, top: 12, bottom: 24 };
    const max = Math.max(0.001, ...values);
    const band = (width - pad.left - pad.right) / Math.max(1, values.length);
    const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img",
                               "aria-label": "kWh per day" });
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "axis" }));
    chart.append(svg("text", { x: pad.left - 4, y: y(max) + 4, "text-anchor": "end", class: "tick" },
      fmtNumber(max, 1)));
    values.forEach((value, i) => {
      const x = pad.left + i * band + band * 0.15;
      const bar = svg("rect", { x, y: y(value), width: band * 0.7, height: Math.max(0, y(0) - y(value)),
                                class: "bar" });
      bar.append(svg("title", {}, `${labels[i]}: ${fmtNumber(value, 2)} kWh`));
      chart.append(bar);
      chart.append(svg("text", { x: x + band * 0.35, y: height - 6, "text-anchor": "middle", class: "tick" },
        labels[i].slice(5)));
    });
    return chart;
  }

  // A step chart: a value holds until the next change. Many points are reduced to one max per pixel.
  function lineChart(rows, since, until, unit) {
    const width = 420;
    const height = 150;
    const pad = { left: 44, right: 8, top: 10, bottom: 22 };
    const points = rows.filter((r) => typeof r.value === "number").map((r) => [r.t, r.value]);
    if (!points.length) return el("p", { className: "muted", text: "No readings in the last 24 hours." });
    const innerW = width - pad.left - pad.right;
    const buckets = new Map();
    for (const [t, v] of points) {
      const px = Math.round(((Math.max(t, since) - since) / (until - since)) * innerW);
      buckets.set(px, Math.max(buckets.get(px) ?? -Infinity, v));
    }
    const series = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    const max = Math.max(1, ...series.map((p) => p[1])) * 1.1;
    const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
    let d = `M ${pad.left + series[0][0]} ${y(series[0][1]).toFixed(1)}`;
    for (let i = 1; i < series.length; i++) {
      d += ` H ${pad.left + series[i][0]} V ${y(series[i][1]).toFixed(1)}`;
    }
    d += ` H ${pad.left + innerW}`;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart line", role: "img",
                               "aria-label": `power over the last 24 hours, up to ${fmtNumber(max / 1.1)} ${unit}` });
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "axis" }));
    chart.append(svg("text", { x: pad.left - 4, y: y(max / 1.1) + 4, "text-anchor": "end", class: "tick" },
      `${fmtNumber(max / 1.1, 0)} ${unit}`));
    chart.append(svg("text", { x: pad.left - 4, y: y(0), "text-anchor": "end", class: "tick" }, `0 ${unit}`));
    for (let h = 0; h <= 24; h += 6) {
      const x = pad.left + (h / 24) * innerW;
      const when = new Date((since + h * 3600) * 1000);
      chart.append(svg("text", { x, y: height - 6, "text-anchor": "middle", class: "tick" },
        when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    }
    chart.append(svg("path", { d, class: "series" }));
    const lastPx = series[series.length - 1];
    chart.append(svg("circle", { cx: pad.left + lastPx[0], cy: y(lastPx[1]).toFixed(1), r: 3, class: "dot" }));
    const last = points[points.length - 1];
    chart.append(svg("title", {}, `now ${fmtNumber(last[1])} ${unit}`));
    return chart;
  }

  // ------------------------------------------------------------------ discovered

  async function renderDiscovered() {
    const root = $("discovered");
    root.replaceChildren(el("p", { className: "muted", text: "Loading…" }));
    let data;
    try {
      data = await api("GET", "/api/discovered");
    } catch (err) {
      root.replaceChildren(el("p", { className: "muted", text: err.status === 404
        ? "No discovery running. Enable the mdns adapter in config.toml to find devices on the network."
        : err.message }));
      return;
    }
    const list = Array.isArray(data) ? data : (data.discovered || data.devices || data.services || []);
    if (!list.length) {
      root.replaceChildren(el("p", { className: "muted", text: "Nothing found yet." }));
      return;
    }
    root.replaceChildren(...list.map((item) => el("article", { className: "card discovered" },
      el("h3", { text: item.name || item.id || item.type || "device" }),
      el("dl", { className: "readings" }, Object.entries(item).filter(([k]) => k !== "name").map(([k, v]) =>
        el("div", { className: "reading" }, el("dt", { text: k }),
          el("dd", { text: typeof v === "object" && v !== null ? JSON.stringify(v) : String(v) })))))));
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
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("login-submit");
      button.disabled = true;
      try {
        await login($("login-token").value.trim(), $("login-remember").checked);
        $("login-token").value = "";
        start();
      } catch (err) {
        showLogin(err.message);
      } finally {
        button.disabled = false;
      }
    });
    $("logout").addEventListener("click", () => logout());
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
    $("resolve-cancel").addEventListener("click", () => $("resolve-dialog").close());
    $("resolve-dialog").addEventListener("close", () => { state.resolving = null; });
    window.addEventListener("hashchange", () => { if (state.token) route(); });

    // A login link (#token=...) from `hearth demo`: the fragment never reaches the server; it is
    // taken out of the address bar at once.
    const fromLink = (location.hash.match(/^#token=([\w-]+)$/) || [])[1];
    if (fromLink) {
      history.replaceState(null, "", `${location.pathname}#/house`);
      login(fromLink, true).then(start, (err) => showLogin(err.message));
      return;
    }
    const token = storedToken();
    if (!token) { showLogin(); return; }
    state.token = token;
    // Check it first (it may have been revoked), then start.
    fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
                          body: JSON.stringify({ token }), cache: "no-store" })
      .then((r) => (r.ok ? start() : logout(r.status === 429 ? "Too many failed attempts; wait a minute." : "")))
      .catch(() => start());
  }

  document.addEventListener("DOMContentLoaded", init);
})();
