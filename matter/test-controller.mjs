#!/usr/bin/env node
/**
 * A Matter controller for tests (tests/matter/test_bridge.py), built on matter.js's CommissioningController from
 * the same pinned packages as the bridge. It takes one JSON request a line on stdin and answers one JSON line on
 * stdout (matter.js's own log goes to stderr):
 *
 *   {"op": "commission", "code": "<manual pairing code>"}          -> {"ok": true, "node_id": "..."}
 *   {"op": "structure"}                                               -> {"ok": true, "endpoints": [{"endpoint", "device_types", "label", "reachable", "clusters"}]}
 *   {"op": "read", "endpoint": 3, "cluster": 6, "attribute": "onOff"} -> {"ok": true, "value": ...}
 *   {"op": "wait", "endpoint", "cluster", "attribute", "value", "timeout_ms"} -> {"ok": true, "value": ...} once a
 *       report (subscription) carried that value (or the last one seen already was it)
 *   {"op": "invoke", "endpoint", "cluster", "command": "on", "args": {}} -> {"ok": true}
 *   {"op": "write", "endpoint", "cluster", "attribute", "value"}      -> {"ok": true}
 *   {"op": "events", "endpoint", "cluster", "names": ["initialPress", ...], "count": 3} -> {"ok": true, "events": {...}}
 *   {"op": "open-window"}                                             -> {"ok": true, "code": "<a new manual code>"}
 *   {"op": "reconnect"}                                               -> {"ok": true} (a new session and subscription)
 *   {"op": "quit"}
 *
 * Env: CONTROLLER_STORAGE (a folder of its own), CONTROLLER_MDNS_INTERFACE (e.g. lo). Discovery is mDNS: run it only in a private network namespace.
 */

import { createInterface } from "node:readline";

for (const method of ["log", "info", "debug"]) console[method] = (...args) => console.error(...args);

const { Environment, Logger } = await import("@matter/main");
const { GeneralCommissioning } = await import("@matter/main/clusters");
const { ManualPairingCodeCodec, ClusterId } = await import("@matter/main/types");
const { CommissioningController } = await import("@project-chip/matter.js");

Logger.level = process.env.CONTROLLER_LOG_LEVEL ?? "warn";
const environment = Environment.default;
environment.vars.set("storage.path", process.env.CONTROLLER_STORAGE);
// matter.js leaves loopback out of "every interface"; a test namespace has nothing else.
if (process.env.CONTROLLER_MDNS_INTERFACE) environment.vars.set("mdns.networkInterface", process.env.CONTROLLER_MDNS_INTERFACE);
Logger.format = "plain";

const controller = new CommissioningController({
    environment: { environment, id: "hearth-test-controller" },
    autoConnect: false,
    adminFabricLabel: "Hearth test",
});
await controller.start();

let node;
const reports = new Map(); // "endpoint/cluster/attribute" -> [values in the order they came]
const events = new Map(); // "endpoint/cluster/event" -> [event data in the order they came]
const waiters = [];

function key(endpoint, cluster, attribute) {
    return `${endpoint}/${cluster}/${attribute}`;
}

function same(a, b) {
    return JSON.stringify(a, (_, v) => (typeof v === "bigint" ? v.toString() : v)) ===
        JSON.stringify(b, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}

function json(value) {
    return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

async function connect(nodeId) {
    node = await controller.getNode(nodeId);
    node.events.attributeChanged.on(({ path: { endpointId, clusterId, attributeName }, value }) => {
        const k = key(endpointId, clusterId, attributeName);
        const list = reports.get(k) ?? [];
        list.push(value);
        reports.set(k, list);
        for (const waiter of [...waiters]) {
            if (waiter.key === k && same(waiter.value, value)) waiter.resolve(value);
        }
    });
    node.events.eventTriggered.on(({ path: { endpointId, clusterId, eventName }, events: list }) => {
        const k = key(endpointId, clusterId, eventName);
        events.set(k, [...(events.get(k) ?? []), ...list.map(e => json(e.data ?? null))]);
    });
    if (!node.isConnected) node.connect();
    if (!node.initialized) await node.events.initialized;
}

function client(endpoint, cluster) {
    const device = node.getDeviceById(endpoint);
    if (!device) throw new Error(`no endpoint ${endpoint}`);
    const found = device.getClusterClientById(ClusterId(cluster));
    if (!found) throw new Error(`endpoint ${endpoint} has no cluster ${cluster}`);
    return found;
}

const handlers = {
    async commission({ code }) {
        const { shortDiscriminator, passcode } = ManualPairingCodeCodec.decode(code);
        const nodeId = await controller.commissionNode({
            commissioning: {
                regulatoryLocation: GeneralCommissioning.RegulatoryLocationType.IndoorOutdoor,
                regulatoryCountryCode: "XX",
            },
            discovery: { identifierData: { shortDiscriminator }, discoveryCapabilities: { onIpNetwork: true } },
            passcode,
        });
        await connect(nodeId);
        return { node_id: String(nodeId) };
    },
    async structure() {
        const endpoints = [];
        for (const device of node.getDevices()) {
            for (const child of [device, ...device.getChildEndpoints()]) {
                const info = child.getClusterClientById(ClusterId(0x39));
                endpoints.push({
                    endpoint: child.number,
                    device_types: child.getDeviceTypes().map(t => t.code),
                    label: info ? await info.attributes.nodeLabel.get() : null,
                    reachable: info ? await info.attributes.reachable.get() : null,
                    clusters: child.getAllClusterClients().map(c => c.id),
                });
            }
        }
        return { endpoints };
    },
    async read({ endpoint, cluster, attribute }) {
        const attr = client(endpoint, cluster).attributes[attribute];
        if (!attr) throw new Error(`cluster ${cluster} has no attribute ${attribute}`);
        return { value: json(await attr.get(true)) };
    },
    async wait({ endpoint, cluster, attribute, value, timeout_ms }) {
        const k = key(endpoint, cluster, attribute);
        const seen = reports.get(k) ?? [];
        if (seen.length && same(seen[seen.length - 1], value)) return { value: json(value), already: true };
        const got = await new Promise((resolve, reject) => {
            const waiter = { key: k, value, resolve: v => { clearTimeout(timer); waiters.splice(waiters.indexOf(waiter), 1); resolve(v); } };
            const timer = setTimeout(() => {
                waiters.splice(waiters.indexOf(waiter), 1);
                reject(new Error(`no report of ${k} = ${JSON.stringify(value)} within ${timeout_ms} ms (seen: ${JSON.stringify(json(reports.get(k) ?? []))})`));
            }, timeout_ms ?? 10_000);
            waiters.push(waiter);
        });
        return { value: json(got) };
    },
    async "open-window"() {
        // A controller that paired lets another one pair: an enhanced commissioning window with a fresh code.
        const { manualPairingCode } = await node.openEnhancedCommissioningWindow(300);
        return { code: manualPairingCode };
    },
    async reconnect() {
        // What a controller does on its own once the subscription's interval has passed in silence; asked now so
        // that a test need not wait for that.
        await node.disconnect();
        node.connect();
        await new Promise(resolve => {
            if (node.isConnected) return resolve();
            node.events.stateChanged.on(state => { if (node.isConnected) resolve(state); });
        });
        return {};
    },
    async events({ endpoint, cluster, names, count, timeout_ms }) {
        // Waits until the named events of a cluster number ``count`` together, then returns them all.
        const deadline = Date.now() + (timeout_ms ?? 10_000);
        const seen = () => Object.fromEntries(names.map(n => [n, events.get(key(endpoint, cluster, n)) ?? []]));
        while (Object.values(seen()).reduce((sum, list) => sum + list.length, 0) < count) {
            if (Date.now() > deadline) throw new Error(`events of ${endpoint}/${cluster}: ${JSON.stringify(seen())}`);
            await new Promise(resolve => setTimeout(resolve, 50));
        }
        return { events: seen() };
    },
    async invoke({ endpoint, cluster, command, args }) {
        const c = client(endpoint, cluster);
        if (typeof c.commands?.[command] !== "function" && typeof c[command] !== "function") {
            throw new Error(`cluster ${cluster} has no command ${command}`);
        }
        // A command without fields (On/Off's "on") takes no argument at all.
        const result = await (c.commands?.[command] ?? c[command]).call(c.commands ?? c, ...(args === undefined ? [] : [args]));
        return { result: json(result ?? null) };
    },
    async write({ endpoint, cluster, attribute, value }) {
        await client(endpoint, cluster).attributes[attribute].set(value);
        return {};
    },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    if (request.op === "quit") break;
    try {
        const answer = await handlers[request.op](request);
        process.stdout.write(JSON.stringify({ ok: true, ...answer }) + "\n");
    } catch (err) {
        process.stdout.write(JSON.stringify({ ok: false, error: String(err?.stack ?? err) }) + "\n");
    }
}
await controller.close();
process.exit(0);
