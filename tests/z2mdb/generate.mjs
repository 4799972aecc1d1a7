// Zigbee2MQTT's device database as a Hearth capture (see README.md).
//
//   node generate.mjs OUTDIR
//
// Reads every definition of the pinned zigbee-herdsman-converters (node_modules beside this file) and
// writes into OUTDIR:
//   capture.jsonl      Hearth's capture format (DESIGN.md contract 4): bridge/state, bridge/devices with one
//                      device per definition (plus the coordinator), then one state message per readable
//                      exposed property (binary: value_on then value_off; enum: each value; numeric: a value
//                      inside its range; composite: an object of its features; text/list: a sample) and one
//                      message per button `action` value.
//   expectations.json  per device: model, vendor, and per property its expose type, parent type, unit,
//                      access, values; the action values; plus what the generator could not do.
// Deterministic: same package version, same bytes (no clock, no randomness; times are synthetic).

import {createRequire} from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const zhc = require("zigbee-herdsman-converters");
const zhcPackage = require("zigbee-herdsman-converters/package.json");
const baseDefinitions = require("zigbee-herdsman-converters/devices/index").default;

const BASE = "zigbee2mqtt";
const START_MS = Date.UTC(2024, 0, 1, 0, 0, 0);
const STEP_MS = 100; // between two capture lines
const LINKQUALITY = 120;
const SPECIFIC = new Set(["light", "switch", "cover", "lock", "climate", "fan"]);
const ACCESS_STATE = 1;

const outDir = process.argv[2];
if (!outDir) {
    console.error("usage: node generate.mjs OUTDIR");
    process.exit(2);
}

// --------------------------------------------------------------------------------------- exposes

// Zigbee2MQTT publishes device.exposes() as JSON (function exposes are called with the device; the
// zigbee2mqtt.io docs and zhc's prepareDefinition call them with a dummy device, as here).
function exposesOf(definition) {
    const exposes = definition.exposes;
    const list = typeof exposes === "function" ? exposes({isDummyDevice: true}, {}) : exposes;
    return {fn: typeof exposes === "function", list: JSON.parse(JSON.stringify(list ?? []))};
}

// Plausible readings by unit (then clamped into the expose's range).
const BY_UNIT = {
    "°C": 21.5, "°F": 70.7, "%": 55, "lx": 250, "lux": 250, "W": 42.5, "kW": 1.2, "V": 230.1, "mV": 3000,
    "A": 0.35, "mA": 350, "kWh": 12.34, "Wh": 1234, "hPa": 1013.2, "kPa": 101.3, "Pa": 101300, "mbar": 1013,
    "ppm": 450, "ppb": 150, "µg/m³": 12, "μg/m³": 12, "mg/m³": 0.05, "Hz": 50, "mired": 300, "K": 3000,
    "s": 30, "sec": 30, "seconds": 30, "ms": 500, "min": 5, "minutes": 5, "h": 2, "hours": 2, "days": 3,
    "°": 45, "dB": 40, "dBm": -60, "m": 1.5, "cm": 25, "mm": 120, "m³": 1.234, "L": 12, "l": 12,
    "L/min": 3, "m³/h": 0.5, "VA": 45, "var": 5, "VAr": 5, "kVArh": 1.5, "kvarh": 1.5, "kVAh": 1.5,
    "lqi": LINKQUALITY, "cd/m²": 100, "g/m³": 8, "bar": 1.2,
};
const BY_NAME = {
    battery: 87, temperature: 21.5, local_temperature: 21.5, humidity: 55, linkquality: LINKQUALITY, brightness: 128,
    x: 0.3127, y: 0.329, hue: 120, saturation: 60,
};

function roundTo(value, step) {
    if (!step || !Number.isFinite(step) || step <= 0) return value;
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
    return Number((Math.round(value / step) * step).toFixed(decimals));
}

function numericValue(feature) {
    const min = typeof feature.value_min === "number" ? feature.value_min : undefined;
    const max = typeof feature.value_max === "number" ? feature.value_max : undefined;
    const middle = () => {
        const mid = min + (max - min) / 2;
        return Number.isInteger(min) && Number.isInteger(max) && !feature.value_step ? Math.round(mid) : mid;
    };
    let value = BY_NAME[feature.name] ?? BY_UNIT[feature.unit];
    if (value === undefined) value = min !== undefined && max !== undefined ? middle() : 1;
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
        value = min !== undefined && max !== undefined ? middle() : (min ?? max);
    }
    if (feature.value_step) {
        value = roundTo(value, feature.value_step);
        if (min !== undefined && value < min) value = min;
        if (max !== undefined && value > max) value = max;
    }
    return value;
}

function sampleValue(feature) {
    switch (feature.type) {
        case "binary":
            return feature.value_on;
        case "numeric":
            return numericValue(feature);
        case "enum":
            return Array.isArray(feature.values) && feature.values.length ? feature.values[0] : "unknown";
        case "text":
            return "sample";
        case "list":
            return feature.item_type ? [sampleValue(feature.item_type)] : [];
        case "composite":
        default:
            if (Array.isArray(feature.features)) {
                // zhc's withEndpoint suffixes a composite's features too (x_rgb), but the state object
                // inside `color_rgb` has the converter's own keys (x, y).
                const suffix = feature.endpoint !== undefined ? `_${feature.endpoint}` : null;
                const object = {};
                for (const sub of feature.features) {
                    let key = sub.property || sub.name;
                    if (suffix && key?.endsWith(suffix) && sub.endpoint === feature.endpoint) {
                        key = key.slice(0, -suffix.length);
                    }
                    if (key) object[key] = sampleValue(sub);
                }
                return object;
            }
            return null;
    }
}

// The values one property's state messages carry: binary on then off, every enum value, else one sample.
function valuesToSend(feature) {
    if (feature.type === "binary") {
        return feature.value_off !== undefined && feature.value_off !== feature.value_on
            ? [feature.value_on, feature.value_off] : [feature.value_on];
    }
    if (feature.type === "enum" && Array.isArray(feature.values) && feature.values.length) return feature.values;
    return [sampleValue(feature)];
}

// Every payload key of a device: top-level generic exposes, features of specific ones (light, switch, …);
// a composite is one key (its features are inside its object). Features sharing a key (a light's
// color_xy and color_hs, both `color`) are one property; their composites' features are merged.
function propertiesOf(exposes) {
    const byKey = new Map();
    const visit = (expose, parent) => {
        if (!expose || typeof expose !== "object") return;
        if (SPECIFIC.has(expose.type) && Array.isArray(expose.features)) {
            for (const feature of expose.features) visit(feature, expose.type);
            return;
        }
        const key = expose.property || expose.name;
        if (!key) return;
        const access = typeof expose.access === "number" ? expose.access : ACCESS_STATE;
        const known = byKey.get(key);
        if (known) {
            known.access |= access;
            if (expose.type === "composite" && known.feature.type === "composite") {
                const have = new Set(known.feature.features.map((f) => f.property || f.name));
                for (const f of expose.features ?? []) {
                    if (!have.has(f.property || f.name)) known.feature.features.push(f);
                }
                known.names.push(expose.name);
            }
            return;
        }
        const feature = expose.type === "composite"
            ? {...expose, features: [...(expose.features ?? [])]} : expose;
        byKey.set(key, {key, feature, parent: parent ?? null, access, names: [expose.name]});
    };
    for (const expose of exposes) visit(expose, null);
    return [...byKey.values()];
}

function describe(prop) {
    const f = prop.feature;
    // A light's color_xy and color_hs are one property, `color`: named so.
    const name = prop.names.length > 1 ? prop.key : f.name;
    const entry = {type: f.type, name, parent: prop.parent, access: prop.access};
    if (f.unit !== undefined) entry.unit = f.unit;
    if (f.endpoint !== undefined) entry.endpoint = f.endpoint;
    if (f.category !== undefined) entry.category = f.category;
    if (f.type === "enum") entry.values = f.values ?? [];
    if (f.type === "binary") Object.assign(entry, {value_on: f.value_on, value_off: f.value_off});
    if (f.type === "numeric") {
        for (const k of ["value_min", "value_max", "value_step"]) if (f[k] !== undefined) entry[k] = f[k];
    }
    if (f.type === "composite") {
        entry.names = prop.names;
        entry.features = (f.features ?? []).map((s) => ({
            property: s.property || s.name, type: s.type, ...(s.unit !== undefined ? {unit: s.unit} : {}),
        }));
    }
    if (f.type === "list" && f.item_type) entry.item_type = f.item_type.type;
    return entry;
}

// --------------------------------------------------------------------------------------- devices

function friendlyName(vendor, model, used) {
    let name = `${vendor} ${model}`
        .replace(/[#+/\\\u0000-\u001f]/g, "_")
        .replace(/\s+/g, " ")
        .trim();
    if (!name) name = "device";
    let unique = name;
    for (let n = 2; used.has(unique.toLowerCase()); n++) unique = `${name} (${n})`;
    used.add(unique.toLowerCase());
    return unique;
}

function ieeeFor(index) {
    return `0x00124b${(index + 1).toString(16).padStart(10, "0")}`;
}

const devices = [{
    ieee_address: "0x00124b0000000000", friendly_name: "Coordinator", type: "Coordinator", network_address: 0,
    supported: true, disabled: false, interview_completed: true, interviewing: false, definition: null,
}];
const expectations = [];
const generatorErrors = [];
const usedNames = new Set(["coordinator"]);
let functionExposes = 0;

baseDefinitions.forEach((base, index) => {
    let definition;
    let exposes;
    try {
        definition = zhc.prepareDefinition(base);
        const got = exposesOf(definition);
        if (got.fn) functionExposes++;
        exposes = got.list;
    } catch (error) {
        generatorErrors.push({model: base.model ?? null, vendor: base.vendor ?? null, error: String(error).slice(0, 300)});
        return;
    }
    const props = propertiesOf(exposes);
    const battery = props.some((p) => p.key === "battery" || p.feature.name === "battery");
    const ieee = ieeeFor(index);
    const name = friendlyName(definition.vendor, definition.model, usedNames);
    devices.push({
        ieee_address: ieee, friendly_name: name, type: battery ? "EndDevice" : "Router",
        network_address: (index % 65000) + 1, power_source: battery ? "Battery" : "Mains (single phase)",
        supported: true, disabled: false, interview_completed: true, interviewing: false,
        definition: {
            source: "native", model: definition.model, vendor: definition.vendor,
            description: definition.description, exposes, supports_ota: !!definition.ota, options: [],
        },
    });
    const properties = {};
    const actions = [];
    for (const prop of props) {
        if (!(prop.access & ACCESS_STATE)) continue;
        properties[prop.key] = describe(prop);
        if (prop.feature.name === "action" && prop.feature.type === "enum") actions.push(...(prop.feature.values ?? []));
    }
    expectations.push({
        ieee_address: ieee, friendly_name: name, model: definition.model, vendor: definition.vendor,
        power_source: battery ? "Battery" : "Mains (single phase)", properties, actions,
        _send: props.filter((p) => p.access & ACCESS_STATE),
    });
});

// --------------------------------------------------------------------------------------- output

fs.mkdirSync(outDir, {recursive: true});
const lines = [];
let t = START_MS;
const line = (topic, payload, retain) => {
    lines.push(JSON.stringify({t: new Date(t).toISOString(), source: "mqtt", topic: `${BASE}/${topic}`, payload, retain}));
    t += STEP_MS;
};
line("bridge/state", {state: "online"}, true);
line("bridge/devices", devices, true);
let stateMessages = 0;
for (const device of expectations) {
    for (const prop of device._send) {
        if (prop.key === "linkquality") continue;
        for (const value of valuesToSend(prop.feature)) {
            line(device.friendly_name, {[prop.key]: value, linkquality: LINKQUALITY}, false);
            stateMessages++;
        }
    }
    delete device._send;
}
fs.writeFileSync(path.join(outDir, "capture.jsonl"), `${lines.join("\n")}\n`);
const summary = {
    package: "zigbee-herdsman-converters", version: zhcPackage.version, definitions: baseDefinitions.length,
    devices: expectations.length, function_exposes: functionExposes, generator_errors: generatorErrors,
    state_messages: stateMessages, capture_lines: lines.length,
};
fs.writeFileSync(path.join(outDir, "expectations.json"), JSON.stringify({generator: summary, devices: expectations}));
console.log(JSON.stringify({...summary, generator_errors: generatorErrors.length}));
