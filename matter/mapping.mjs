/**
 * The mapping table of gateway/matter/mapping.py, applied: which endpoints a Hearth device becomes and how values
 * convert both ways. Pure (no I/O, no matter.js): the bridge uses it, and tests/matter/test_mapping.py checks that
 * it plans exactly what the Python side plans.
 */

/** The table applied to one device (as gateway.matter.mapping.plan_device): endpoints and what does not map. */
export function planDevice(mapping, device) {
    const rules = mapping.device_types;
    const tags = new Set(device.tags ?? []);
    const planned = [];
    const unmapped = [];
    for (const component of Object.keys(device.capabilities ?? {}).sort()) {
        const caps = device.capabilities[component];
        const taken = new Set();
        for (const rule of rules) {
            if (rule.tag !== null && !tags.has(rule.tag)) continue;
            if (!rule.requires.every(cap => cap in caps && !taken.has(cap))) continue;
            const used = [...rule.requires, ...rule.optional].filter(cap => cap in caps && !taken.has(cap));
            used.forEach(cap => taken.add(cap));
            planned.push({ component, rule });
            const bound = new Set([...rule.clusters.flatMap(c => c.bindings.map(b => b.source)), ...(rule.carries ?? [])]);
            for (const cap of used) {
                for (const attribute of [...(caps[cap].attributes ?? [])].sort()) {
                    if (!bound.has(`${cap}.${attribute}`)) {
                        unmapped.push({ component, capability: cap, attribute, reason: `${rule.name} has no attribute for it` });
                    }
                }
            }
        }
        for (const cap of Object.keys(caps).filter(c => !taken.has(c)).sort()) {
            if (cap === "connectivity") {
                for (const attribute of [...(caps[cap].attributes ?? [])].sort()) {
                    if (!mapping.bridge_level.includes(`${cap}.${attribute}`)) {
                        unmapped.push({ component, capability: cap, attribute,
                                        reason: "Bridged Device Basic Information has no attribute for it" });
                    }
                }
                continue;
            }
            unmapped.push({ component, capability: cap, reason: mapping.not_mapped[cap] ?? "no Matter device type takes it" });
        }
    }
    return { planned, unmapped };
}

// ------------------------------------------------------------------ conversions (see mapping.py's docstring)

function clamp(value, convert) {
    if (convert.min !== undefined && value < convert.min) return convert.min;
    if (convert.max !== undefined && value > convert.max) return convert.max;
    return value;
}

/** A Hearth value as Matter shows it; undefined: it cannot be shown. */
export function toMatter(value, convert) {
    if (value === null || value === undefined) return undefined;
    switch (convert.kind) {
        case "same": return value;
        case "not": return !value;
        case "scale": return typeof value === "number" ? clamp(Math.round(value * convert.factor), convert) : undefined;
        case "linear": return typeof value === "number" ? Math.round(value * convert.factor + convert.offset) : undefined;
        case "energy": return typeof value === "number" ? { energy: Math.round(value * 1e6) } : undefined;
        case "level": return typeof value === "number" ? Math.min(254, Math.max(1, Math.round(value * 254 / 100))) : undefined;
        case "mireds": return typeof value === "number" && value > 0 ? clamp(Math.round(1e6 / value), convert) : undefined;
        case "lux": return typeof value === "number" ? (value <= 0 ? 0 : Math.min(0xfffe, Math.round(10000 * Math.log10(value) + 1))) : undefined;
        case "map": return convert.to[String(value)];
        case "bands": {
            if (typeof value !== "number") return undefined;
            const band = convert.bands.find(([bound]) => value <= bound);
            return band ? band[1] : convert.above;
        }
        default: return undefined;
    }
}

/** The clusters an endpoint of ``rule`` has for a component supporting ``caps`` (optional ones when it reports
 * one of their attributes). */
export function clustersFor(rule, caps) {
    const reports = source => {
        const [cap, attribute] = source.split(".", 2);
        return (caps?.[cap]?.attributes ?? []).includes(attribute);
    };
    return rule.clusters.filter(cluster => !cluster.optional
        || (cluster.when ?? []).some(cap => cap in (caps ?? {}))
        || cluster.bindings.some(binding => reports(binding.source)));
}

/** A Matter value as the Hearth command's argument. */
export function fromMatter(value, convert) {
    switch (convert.kind) {
        case "same": return value;
        case "not": return !value;
        case "scale": return Math.round((value / convert.factor) * 100) / 100;
        case "linear": return typeof value === "number" ? Math.round(((value - convert.offset) / convert.factor) * 100) / 100 : undefined;
        case "level": return Math.round(value * 100 / 254);
        case "mireds": return value > 0 ? Math.round(1e6 / value) : undefined;
        case "map": return convert.back?.[String(value)];
        default: return undefined;
    }
}
