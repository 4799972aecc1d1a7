// Hearth web UI: the words on the page, in the reader's language.
//
// The catalogues are the gateway's own (/ui/i18n/<tag>.json: flat keys -> text with {placeholders}), the
// same files the gateway's notifications are written from: adding a language is adding a file. English is
// always loaded too, as the fallback for a key a catalogue lacks.
//
// Static text is marked in the HTML: data-i18n (the text), data-i18n-placeholder, data-i18n-aria-label,
// data-i18n-title; apply() fills them. Dates, times and numbers go through Intl with the same locale.
"use strict";

window.HearthI18n = (() => {
  const FALLBACK = "en";
  const catalogues = new Map();
  let language = FALLBACK;
  let available = ["en", "zh-Hans"]; // replaced by the list /api/me gives
  let names = { en: "English", "zh-Hans": "简体中文" }; // each language's name in itself

  async function fetchCatalogue(tag) {
    if (catalogues.has(tag)) return catalogues.get(tag);
    let messages = {};
    try {
      const response = await fetch(`/ui/i18n/${encodeURIComponent(tag)}.json`, { cache: "no-cache" });
      if (response.ok) messages = await response.json();
    } catch { /* offline: the English words in the HTML stay */ }
    catalogues.set(tag, messages);
    return messages;
  }

  // The available tag a browser's preference list names (zh, zh-CN -> zh-Hans), or null.
  function match(tag) {
    if (!tag) return null;
    const wanted = String(tag).toLowerCase();
    const exact = available.find((a) => a.toLowerCase() === wanted);
    if (exact) return exact;
    const [primary, rest = ""] = wanted.split("-", 2);
    if (primary === "zh") {
      return ["", "cn", "sg", "hans"].includes(rest) ? available.find((a) => a === "zh-Hans") || null : null;
    }
    return available.find((a) => a.toLowerCase() === primary) || null;
  }

  function browserLanguage() {
    for (const tag of navigator.languages || [navigator.language]) {
      const found = match(tag);
      if (found) return found;
    }
    return FALLBACK;
  }

  // Switch the page to `tag` (an available one, else English) and re-label the marked elements.
  // The latest call wins: the browser's language asked for at start must not land after the person's own.
  let calls = 0;
  async function use(tag, languages) {
    if (Array.isArray(languages) && languages.length) {
      available = languages.map((l) => l.tag || l);
      names = Object.fromEntries(languages.map((l) => [l.tag || l, l.name || l.tag || l]));
    }
    const chosen = match(tag) || FALLBACK;
    const call = ++calls;
    await Promise.all([fetchCatalogue(FALLBACK), fetchCatalogue(chosen)]);
    if (call !== calls) return language;
    language = chosen;
    document.documentElement.lang = chosen;
    apply(document);
    return chosen;
  }

  function t(key, values) {
    const text = (catalogues.get(language) || {})[key] ?? (catalogues.get(FALLBACK) || {})[key];
    if (text === undefined) return key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (values && name in values ? String(values[name]) : whole));
  }

  // Switching back to English needs no reload: English is always loaded, so every marked text has its key's.
  function apply(root) {
    const fill = (attribute, set) => {
      for (const el of root.querySelectorAll(`[${attribute}]`)) {
        const key = el.getAttribute(attribute);
        const text = t(key);
        if (text !== key) set(el, text);
      }
    };
    fill("data-i18n", (el, text) => { el.textContent = text; });
    fill("data-i18n-placeholder", (el, text) => { el.placeholder = text; });
    fill("data-i18n-aria-label", (el, text) => { el.setAttribute("aria-label", text); });
    fill("data-i18n-title", (el, text) => { el.title = text; });
  }

  const locale = () => language;
  const date = (value, options) => new Intl.DateTimeFormat(language, options).format(value);
  const number = (value, options) => new Intl.NumberFormat(language, options).format(value);
  // ["a", "b", "c"] -> "a, b and c" / "a、b和c". From the catalogue rather than Intl.ListFormat, whose
  // English puts a comma before "and", which this UI does not.
  function list(items) {
    if (items.length < 2) return items.join("");
    const word = (key, english) => { const text = t(key); return text === key ? english : text; };
    const last = items[items.length - 1];
    return `${items.slice(0, -1).join(word("list.separator", ", "))}${word("list.and", " and ")}${last}`;
  }

  return { use, t, apply, locale, date, number, list, browserLanguage,
    languages: () => available.map((tag) => ({ tag, name: names[tag] || tag })) };
})();
