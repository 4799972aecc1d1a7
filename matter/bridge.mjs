#!/usr/bin/env node
/**
 * Hearth's Matter bridge: a matter.js ServerNode whose AggregatorEndpoint exposes Hearth's devices as bridged
 * endpoints. Hearth (gateway/matter/) starts and supervises this process; it reads Hearth like any other client:
 *
 * - the device list and live state over Hearth's WebSocket API (/api/ws: auth, then subscribe to state,
 *   availability and devices with a snapshot), with a token of its own (env HEARTH_MATTER_TOKEN, never logged);
 * - a controller's command (a Matter attribute changed by On/Off, Level Control, Thermostat, ...) goes back as
 *   POST /api/devices/{id}/commands, and on failure the Matter attribute returns to what Hearth says.
 *
 * Which Matter device type a device becomes is the table of gateway/matter/mapping.py, passed in the config file
 * (env HEARTH_MATTER_CONFIG, JSON written by Hearth, mode 0600). Fabrics are kept in the config's storage_dir.
 *
 * stdout carries one JSON object per line for Hearth's supervisor (ready, status); everything else (matter.js's
 * own log included) goes to stderr.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

// matter.js logs through console.info/debug, which write to stdout: stdout is the supervisor's channel.
for (const method of ["log", "info", "debug"]) console[method] = (...args) => console.error(...args);

const { Endpoint, Environment, Logger, ServerNode, VendorId } = await import("@matter/main");
const devices = await import("@matter/main/devices");
const behaviors = await import("@matter/main/behaviors");
const { AggregatorEndpoint } = await import("@matter/main/endpoints/aggregator");
const { clustersFor, fromMatter, planDevice: planWith, toMatter } = await import("./mapping.mjs");

const started = performance.now();
const config = JSON.parse(readFileSync(process.env.HEARTH_MATTER_CONFIG, "utf8"));
const token = process.env.HEARTH_MATTER_TOKEN ?? "";
delete process.env.HEARTH_MATTER_TOKEN; // not inherited by anything this process might start
if (!token) fail("HEARTH_MATTER_TOKEN is not set");
if (typeof globalThis.WebSocket !== "function") fail("this Node has no WebSocket (Node 20 needs --experimental-websocket)");

Logger.level = config.log_level ?? "notice";
Logger.format = "plain";
// matter.js logs the passcode with the QR code when the node is not commissioned: Hearth shows those codes to
// people who may see them (GET /api/matter, hearth matter pair), not to whoever reads the log.
Logger.facilityLevels = { Commissioning: "warn" };
const environment = Environment.default;
environment.vars.set("storage.path", config.storage_dir);
if (config.mdns_interface) environment.vars.set("mdns.networkInterface", config.mdns_interface);

// Reconnecting to Hearth: doubling from 0.5 s to 30 s (Hearth restarting takes a few seconds; no hammering).
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
// A controller dragging a slider (or a Level Control transition) changes an attribute many times a second: the
// device gets the value it settles on, this long after the last change.
const COMMAND_SETTLE_MS = 150;
// How long one command may take in Hearth (it waits for the device to confirm, up to its own timeout).
const COMMAND_TIMEOUT_MS = 20_000;
// The label of a bridged device: Matter allows 32 bytes (UTF-8).
const LABEL_MAX_BYTES = 32;
// Status lines carry the process's memory so that /healthz can show it; also once a minute when idle.
const STATUS_EVERY_MS = 60_000;
// Hearth unreachable this many times in a row (about an hour at the longest back-off): exit, so that the
// supervisor sees a failure rather than a bridge that shows every device unreachable for ever.
const MAX_FAILED_CONNECTS = 120;

const mapping = config.mapping;
const planDevice = device => planWith(mapping, device);
const endpoints = new Map(); // endpoint key -> { endpoint, deviceId, component, rule, clusters, pending (timers) }
const hearthDevices = new Map(); // device id -> device (as the API shows it)
const failed = new Map(); // endpoint key -> { device, component, device_type, reason }: endpoints matter.js refused
let connected = false;
let unrepresentable = 0;
let commandsSent = 0;
let commandsFailed = 0;

function fail(message) {
    emit({ type: "fatal", message });
    process.exit(2);
}

function emit(message) {
    process.stdout.write(JSON.stringify(message) + "\n");
}

// ------------------------------------------------------------------ endpoints

function endpointKey(deviceId, component, ruleKey) {
    // matter.js keeps an endpoint's number by this id in its storage: stable for the same device, component and type.
    return "h" + createHash("sha256").update(`${deviceId}\u0000${component}\u0000${ruleKey}`).digest("hex").slice(0, 24);
}

/** An error with its causes (matter.js nests them: "Behaviors have errors" -> "Error initializing ..." -> why). */
function describeError(err, depth = 0) {
    if (!err || depth > 4) return "";
    const parts = [String(err.message ?? err)];
    if (err.cause) parts.push(describeError(err.cause, depth + 1));
    for (const inner of err.errors ?? []) parts.push(describeError(inner, depth + 1));
    return parts.filter(Boolean).join(": ").slice(0, 1000);
}

function truncateBytes(text, maxBytes) {
    let out = "";
    for (const char of text) {
        if (Buffer.byteLength(out + char, "utf8") > maxBytes) break;
        out += char;
    }
    return out;
}

/** The name controllers show: the device's name, with its area in front when the name does not say it. */
function labelOf(device, component) {
    let label = device.name || device.id;
    if (device.area && !label.toLowerCase().includes(device.area.toLowerCase())) label = `${device.area} ${label}`;
    if (component !== "main") label = `${label} ${component}`;
    return truncateBytes(label, LABEL_MAX_BYTES);
}

function valueOf(device, component, source) {
    const [cap, attribute] = source.split(".", 2);
    return device.components?.[component]?.[cap]?.[attribute];
}

/**
 * Behaviors whose matter.js server would act on its own: replaced by ones that leave the acting to the device.
 * A Window Covering server "moves" by setting the current position to the target; a real cover moves by itself
 * and Hearth reports where it is. Stop Motion becomes cover.stop.
 */
const DEVICE_ACTS = {
    windowCovering: server => class extends server {
        handleMovement() {}
        handleStopMovement() {
            super.handleStopMovement();
            const entry = endpoints.get(this.endpoint.id);
            if (entry) sendHearth(entry, "cover", "stop", {}).catch(err => console.error(`stop failed: ${err}`));
        }
    },
};

function endpointType(rule, clusters) {
    const Device = devices[rule.js_device];
    const requirements = devices[rule.js_device.replace(/Device$/, "Requirements")];
    if (!Device || !requirements) throw new Error(`matter.js has no ${rule.js_device}`);
    const servers = [behaviors.BridgedDeviceBasicInformationServer];
    for (const cluster of clusters) {
        const name = cluster.behavior[0].toUpperCase() + cluster.behavior.slice(1);
        let server = requirements.server.mandatory[name] ?? requirements.server.optional[name];
        if (cluster.server) server = server ?? behaviors[cluster.server];
        if (!server) throw new Error(`no server for ${cluster.behavior} in ${rule.js_device}`);
        if (cluster.features.length) server = server.with(...cluster.features);
        if (DEVICE_ACTS[cluster.behavior]) server = DEVICE_ACTS[cluster.behavior](server);
        servers.push(server);
    }
    return Device.with(...servers);
}

function stateFor(clusters, device, component, withDefaults = true) {
    const state = {};
    for (const cluster of clusters) {
        const values = withDefaults ? { ...cluster.defaults } : {};
        for (const binding of cluster.bindings) {
            const value = toMatter(valueOf(device, component, binding.source), binding.convert);
            if (value !== undefined) values[binding.attribute] = value;
        }
        state[cluster.behavior] = values;
    }
    return state;
}

function basicInformation(device, component, key) {
    return {
        nodeLabel: labelOf(device, component),
        productName: truncateBytes(device.model || "Hearth device", 32),
        vendorName: truncateBytes(device.manufacturer || "Hearth", 32),
        serialNumber: key.slice(1, 21),
        uniqueId: key.slice(1, 33),
        reachable: device.available !== false && connected,
    };
}

async function addEndpoints(aggregator, device) {
    const { planned } = planDevice(device);
    for (const { component, rule } of planned) {
        const key = endpointKey(device.id, component, rule.key);
        if (endpoints.has(key)) continue;
        const clusters = clustersFor(rule, device.capabilities?.[component]);
        let endpoint;
        try {
            endpoint = new Endpoint(endpointType(rule, clusters), {
                id: key,
                bridgedDeviceBasicInformation: basicInformation(device, component, key),
                ...stateFor(clusters, device, component),
            });
            await aggregator.add(endpoint);
        } catch (err) {
            // One device matter.js refuses (a value out of a cluster's bounds) must not keep the others out.
            const reason = describeError(err);
            failed.set(key, { device: device.id, component, device_type: rule.key, reason });
            console.error(`cannot bridge ${device.id} ${component} as ${rule.name}: ${reason}`);
            continue;
        }
        failed.delete(key);
        const entry = { endpoint, deviceId: device.id, component, rule, clusters, pending: new Map() };
        endpoints.set(key, entry);
        watchCommands(entry);
    }
}

async function removeEndpoints(deviceId, keep = new Set()) {
    for (const [key, refused] of [...failed]) if (refused.device === deviceId && !keep.has(key)) failed.delete(key);
    for (const [key, entry] of [...endpoints]) {
        if (entry.deviceId !== deviceId || keep.has(key)) continue;
        endpoints.delete(key);
        await entry.endpoint.close();
    }
}

/** Bring the bridge to the device as Hearth shows it now (added, changed, renamed, moved). */
async function reconcileDevice(aggregator, device) {
    hearthDevices.set(device.id, device);
    const wanted = new Set(planDevice(device).planned.map(p => endpointKey(device.id, p.component, p.rule.key)));
    await removeEndpoints(device.id, wanted);
    await addEndpoints(aggregator, device);
    for (const entry of endpoints.values()) {
        if (entry.deviceId !== device.id) continue;
        await entry.endpoint.set({
            bridgedDeviceBasicInformation: {
                nodeLabel: labelOf(device, entry.component),
                reachable: device.available !== false && connected,
            },
            ...stateFor(entry.clusters, device, entry.component, false),
        });
    }
}

async function applyState(event) {
    const device = hearthDevices.get(event.device);
    if (device) {
        const component = (device.components[event.component] ??= {});
        (component[event.capability] ??= {})[event.attribute] = event.value;
    }
    const source = `${event.capability}.${event.attribute}`;
    for (const entry of endpoints.values()) {
        if (entry.deviceId !== event.device || entry.component !== event.component) continue;
        for (const cluster of entry.clusters) {
            for (const binding of cluster.bindings) {
                if (binding.source !== source) continue;
                const value = toMatter(event.value, binding.convert);
                if (value === undefined) {
                    if (event.value !== null) unrepresentable++;
                    continue;
                }
                await entry.endpoint.set({ [cluster.behavior]: { [binding.attribute]: value } });
            }
        }
    }
}

// A press as the Switch server's momentary sequence: presses of the switch's position 1, then back to 0. The server
// makes the Matter events of it (Initial Press, Short Release, Multi Press Complete after its multi-press delay;
// Long Press after its long press delay, Long Release).
const PRESS_COUNT = { single: 1, double: 2, triple: 3, quadruple: 4, quintuple: 5 };

async function applyDeviceEvent(event) {
    const source = `${event.capability}.${event.name}`;
    for (const entry of endpoints.values()) {
        if (entry.deviceId !== event.device || entry.component !== event.component) continue;
        const behavior = entry.rule.events?.[source];
        if (behavior !== "switch") continue;
        const set = position => entry.endpoint.set({ switch: { rawPosition: position } });
        const kind = event.data?.kind;
        if (PRESS_COUNT[kind]) {
            for (let i = 0; i < PRESS_COUNT[kind]; i++) {
                await set(1);
                await set(0);
            }
        } else if (kind === "hold") {
            await set(1); // the release comes as an event of its own
        } else if (kind === "release") {
            await set(0);
        } else if (kind === "long") {
            await set(1);
            const held = entry.endpoint.state.switch.longPressDelay + 100;
            await new Promise(resolve => setTimeout(resolve, held));
            await set(0);
        } else {
            unrepresentable++; // a device's own word (a cube's "rotate_left"): no Matter press for it
        }
    }
}

async function setReachable(deviceId, available) {
    const device = hearthDevices.get(deviceId);
    if (device) device.available = available;
    for (const entry of endpoints.values()) {
        if (entry.deviceId !== deviceId) continue;
        await entry.endpoint.set({ bridgedDeviceBasicInformation: { reachable: available !== false && connected } });
    }
}

// ------------------------------------------------------------------ commands: Matter -> Hearth

function watchCommands(entry) {
    for (const cluster of entry.clusters) {
        for (const binding of cluster.bindings) {
            if (!binding.command) continue;
            const events = entry.endpoint.events[cluster.behavior];
            const changed = events?.[`${binding.attribute}$Changed`];
            if (!changed) continue;
            changed.on(value => {
                // Our own update from Hearth's state changes the attribute too: only a value other than
                // Hearth's is a controller's command.
                const device = hearthDevices.get(entry.deviceId);
                const current = device ? toMatter(valueOf(device, entry.component, binding.source), binding.convert) : undefined;
                if (JSON.stringify(current) === JSON.stringify(value)) return;
                // Arguments taken together (hue with saturation) settle as one command.
                const slot = binding.command.with ? `${cluster.behavior}:${binding.command.command}`
                    : `${cluster.behavior}.${binding.attribute}`;
                clearTimeout(entry.pending.get(slot));
                entry.pending.set(slot, setTimeout(() => {
                    entry.pending.delete(slot);
                    sendCommand(entry, cluster, binding, value).catch(err => console.error(`command failed: ${err}`));
                }, COMMAND_SETTLE_MS));
            });
        }
    }
}

async function sendCommand(entry, cluster, binding, matterValue) {
    const [capability] = binding.source.split(".", 1);
    let command;
    let args = {};
    if ("true" in binding.command) {
        command = fromMatter(matterValue, binding.convert) ? binding.command.true : binding.command.false;
    } else if ("values" in binding.command) {
        command = binding.command.values[String(matterValue)];
        if (command !== null && typeof command === "object") {
            args = command.args ?? {};
            command = command.command;
        }
        if (command === undefined) {
            unrepresentable++;
            await revert(entry, cluster, binding);
            return;
        }
    } else {
        const arg = fromMatter(matterValue, binding.convert);
        if (arg === undefined) {
            unrepresentable++;
            await revert(entry, cluster, binding);
            return;
        }
        command = binding.command.command;
        args = { [binding.command.arg]: arg };
        for (const [name, attribute] of Object.entries(binding.command.with ?? {})) {
            const other = cluster.bindings.find(b => b.attribute === attribute);
            const value = entry.endpoint.state[cluster.behavior][attribute];
            const converted = other && value !== null && value !== undefined ? fromMatter(value, other.convert) : undefined;
            if (converted === undefined) {
                unrepresentable++;
                await revert(entry, cluster, binding);
                return;
            }
            args[name] = converted;
        }
    }
    if (!(await sendHearth(entry, capability, command, args))) await revert(entry, cluster, binding);
}

/** One command to Hearth (POST /api/devices/{id}/commands); true when Hearth took it (2xx). */
async function sendHearth(entry, capability, command, args) {
    const url = `${config.hearth_url}/api/devices/${encodeURIComponent(entry.deviceId)}/commands`;
    commandsSent++;
    let ok = false;
    let status = 0;
    try {
        const response = await fetch(url, {
            method: "POST",
            headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ component: entry.component, capability, command, args }),
            signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
        });
        status = response.status;
        ok = response.ok;
        await response.text();
    } catch (err) {
        console.error(`command ${capability}.${command} to ${entry.deviceId}: ${err}`);
    }
    emit({ type: "command", device: entry.deviceId, component: entry.component, capability, command, args, http_status: status });
    if (!ok) commandsFailed++;
    return ok;
}

async function revert(entry, cluster, binding) {
    const device = hearthDevices.get(entry.deviceId);
    const value = device ? toMatter(valueOf(device, entry.component, binding.source), binding.convert) : undefined;
    if (value !== undefined) await entry.endpoint.set({ [cluster.behavior]: { [binding.attribute]: value } });
}

// ------------------------------------------------------------------ Hearth's WebSocket

function wsUrl() {
    return config.hearth_url.replace(/^http/, "ws") + "/api/ws";
}

/** One connection: resolves when it ends. ``onSnapshot`` gets the devices; events are applied in order. */
function connectOnce(onSnapshot, onEvent) {
    return new Promise(resolve => {
        const ws = new WebSocket(wsUrl());
        let queue = Promise.resolve();
        const run = task => { queue = queue.then(task).catch(err => console.error(`bridge update failed: ${err?.stack ?? err}`)); };
        ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
        ws.onmessage = message => {
            const data = JSON.parse(message.data);
            if (data.type === "auth_ok") {
                ws.send(JSON.stringify({ type: "subscribe", id: 1, events: ["state", "availability", "devices", "device_events"],
                                         snapshot: true }));
            } else if (data.type === "result" && data.id === 1) {
                if (!data.ok) console.error(`subscribe refused: ${data.error}`);
                else run(() => onSnapshot(data.devices ?? []));
            } else if (data.type === "event") {
                run(() => onEvent(data));
            }
        };
        ws.onclose = event => {
            if (event.code === 4401 || event.code === 4403) console.error(`Hearth refused the bridge's token (${event.code})`);
            queue.finally(() => resolve(event.code));
        };
        ws.onerror = () => {}; // onclose follows
    });
}

// ------------------------------------------------------------------ status

function fabrics(server) {
    const list = server.state.operationalCredentials?.fabrics ?? [];
    return list.map(f => ({ index: f.fabricIndex, label: f.label, vendor_id: f.vendorId }));
}

function statusMessage(server) {
    // What does not map is listed by Hearth from the same table (gateway.matter.mapping.plan_device): only counted.
    let unmapped = 0;
    for (const device of hearthDevices.values()) unmapped += planDevice(device).unmapped.length;
    return {
        type: "status",
        connected,
        commissioned: server.lifecycle.isCommissioned,
        fabrics: fabrics(server),
        endpoints: [...endpoints.entries()].map(([key, e]) => ({
            device: e.deviceId, component: e.component, device_type: e.rule.key, endpoint: e.endpoint.number, id: key,
        })),
        unmapped,
        failed: [...failed.values()],
        unrepresentable,
        commands_sent: commandsSent,
        commands_failed: commandsFailed,
        rss_bytes: process.memoryUsage().rss,
    };
}

// ------------------------------------------------------------------ main

const server = await ServerNode.create({
    id: "hearth-bridge",
    network: { port: config.port },
    commissioning: { passcode: config.passcode, discriminator: config.discriminator },
    productDescription: { name: config.name, deviceType: AggregatorEndpoint.deviceType },
    basicInformation: {
        vendorName: "Hearth",
        vendorId: VendorId(config.vendor_id),
        productId: config.product_id,
        productName: "Hearth bridge",
        productLabel: "Matter bridge",
        nodeLabel: truncateBytes(config.name, 32),
        serialNumber: config.serial,
        uniqueId: `hearth-${config.serial}`,
    },
});
const aggregator = new Endpoint(AggregatorEndpoint, { id: "aggregator" });
await server.add(aggregator);

let reportStatus = () => emit(statusMessage(server));
server.lifecycle.commissioned.on(() => reportStatus());
server.lifecycle.decommissioned.on(() => reportStatus());
server.events.commissioning?.fabricsChanged?.on(() => reportStatus());
const ticker = setInterval(() => reportStatus(), STATUS_EVERY_MS);

let serverStarted = false;
let firstSnapshot = true;
const stopping = { value: false };

async function onSnapshot(list) {
    connected = true;
    const seen = new Set(list.map(d => d.id));
    for (const id of [...hearthDevices.keys()]) {
        if (!seen.has(id)) {
            hearthDevices.delete(id);
            await removeEndpoints(id);
        }
    }
    // All at once: matter.js builds endpoints concurrently, much faster than one after the other.
    await Promise.all(list.map(device => reconcileDevice(aggregator, device)));
    if (!serverStarted) {
        await server.start();
        serverStarted = true;
        const pairing = server.state.commissioning.pairingCodes;
        emit({
            type: "ready",
            port: config.port,
            manual_code: pairing.manualPairingCode,
            qr_payload: pairing.qrPairingCode,
            endpoints: endpoints.size,
            startup_ms: Math.round(performance.now() - started),
        });
    }
    if (firstSnapshot) firstSnapshot = false;
    reportStatus();
}

async function onEvent(event) {
    if (event.event === "state") {
        await applyState(event);
    } else if (event.event === "device_event") {
        await applyDeviceEvent(event);
    } else if (event.event === "availability") {
        await setReachable(event.device, event.available);
    } else if (event.event === "devices") {
        if (event.change === "removed") {
            hearthDevices.delete(event.device);
            await removeEndpoints(event.device);
        } else if (event.data) {
            await reconcileDevice(aggregator, event.data);
        }
        reportStatus();
    }
}

async function shutdown() {
    if (stopping.value) return;
    stopping.value = true;
    clearInterval(ticker);
    reportStatus = () => {};
    try {
        await server.close();
    } finally {
        process.exit(0);
    }
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// stdin is a pipe from Hearth that it never writes to: its end means Hearth is gone (even killed with SIGKILL),
// and a bridge without its Hearth must not go on announcing itself.
process.stdin.on("end", shutdown);
process.stdin.on("error", shutdown);
process.stdin.resume();

let delay = RECONNECT_MIN_MS;
let failedConnects = 0;
while (!stopping.value) {
    const code = await connectOnce(onSnapshot, onEvent);
    if (stopping.value) break;
    failedConnects = connected ? 0 : failedConnects + 1;
    if (failedConnects >= MAX_FAILED_CONNECTS) fail(`Hearth unreachable at ${config.hearth_url} ${failedConnects} times in a row`);
    if (connected) {
        connected = false;
        delay = RECONNECT_MIN_MS;
        for (const id of hearthDevices.keys()) await setReachable(id, hearthDevices.get(id).available);
        reportStatus();
    }
    if (code === 4401 || code === 4403) fail("Hearth refused the bridge's token");
    await new Promise(r => setTimeout(r, delay * (0.5 + Math.random() / 2)));
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
}
