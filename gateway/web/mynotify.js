// Hearth web UI: a person's own notification settings (GET/PUT /api/me/notifications, POST .../test), in
// the "My notifications" dialog: quiet hours and the channels that reach them, as the contact the owner
// linked them to. Channel URLs are write-only: the gateway never sends them back (they carry credentials).
//
// Same safety rule as app.js: what comes from the gateway reaches the page only as text (textContent).
"use strict";

window.HearthMyNotifications = (() => {
  const $ = (id) => document.getElementById(id);
  const t = (key, values) => window.HearthI18n.t(key, values);

  const call = (method, path, body) => window.HearthSession.call(method, path, body);

  function say(message, isError) {
    const out = $("mynotify-status");
    out.textContent = message || "";
    out.hidden = !message;
    out.classList.toggle("error", !!isError);
  }

  function show(data) {
    const form = $("mynotify-form");
    $("mynotify-channels").textContent = "";
    if (!data.contact) {
      $("mynotify-contact").textContent = data.hint || t("me.notify.not_linked");
      form.hidden = true;
      return;
    }
    $("mynotify-contact").textContent = t("me.notify.contact", { contact: data.contact });
    if (data.kind !== "apprise") {
      $("mynotify-channels").textContent = t("me.notify.not_apprise", { kind: data.kind });
      form.hidden = true;
      return;
    }
    $("mynotify-channels").textContent = t("me.notify.channels", { channels: (data.channels || []).join(", ") });
    const quiet = data.quiet_hours ? data.quiet_hours.split("-").map((s) => s.trim().padStart(5, "0")) : null;
    $("mynotify-quiet-on").checked = !!quiet;
    if (quiet) [$("mynotify-quiet-from").value, $("mynotify-quiet-to").value] = quiet;
    $("mynotify-urls").value = "";
    form.hidden = false;
  }

  async function open() {
    say("");
    $("mynotify-dialog").showModal();
    try {
      show(await call("GET", "/api/me/notifications"));
    } catch (err) {
      say(err.message, true);
    }
  }

  async function save(event) {
    event.preventDefault();
    const body = {
      quiet_hours: $("mynotify-quiet-on").checked
        ? `${$("mynotify-quiet-from").value}-${$("mynotify-quiet-to").value}` : null,
    };
    const urls = $("mynotify-urls").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (urls.length) body.urls = urls;
    try {
      show(await call("PUT", "/api/me/notifications", body));
      say(t("me.notify.saved"));
    } catch (err) {
      say(err.message, true);
    }
  }

  async function reset() {
    try {
      show(await call("PUT", "/api/me/notifications", {}));
      say(t("me.notify.reset_done"));
    } catch (err) {
      say(err.message, true);
    }
  }

  async function test() {
    try {
      await call("POST", "/api/me/notifications/test");
      say(t("me.notify.test_sent"));
    } catch (err) {
      say(err.message, true);
    }
  }

  function init() {
    $("mynotify-open").addEventListener("click", open);
    $("mynotify-close").addEventListener("click", () => $("mynotify-dialog").close());
    $("mynotify-form").addEventListener("submit", save);
    $("mynotify-reset").addEventListener("click", reset);
    $("mynotify-test").addEventListener("click", test);
  }

  document.addEventListener("DOMContentLoaded", init);
  return { open };
})();
