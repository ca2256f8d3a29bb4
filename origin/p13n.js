/* p13n browser SDK: Event v1 batched and sent with navigator.sendBeacon.
 *
 *   <script src="/v1/sdk/p13n.js"></script>
 *   <script>p13n.init({siteKey: "pk_live_…"}); p13n.track("view", {item: "sku-1"});</script>
 *
 * Event ids are generated here, so a beacon the browser retries is counted once. The shopper
 * id cookie is HttpOnly: events go out without `user` and the collector fills it from the
 * cookie (same origin). Nothing is sent when the shopper opted out (Global Privacy Control or
 * the p13n_optout cookie). Bodies are text/plain JSON: no CORS preflight, and sendBeacon
 * survives the page being closed; batches stay far below the 64 KB beacon limit.
 */
(function (root) {
  "use strict";
  var cfg = { endpoint: "/v1/events", siteKey: "", user: "", batchMax: 20, flushMs: 2000,
              bufferMax: 500 };
  var buffer = [];
  var timer = null;
  var dropped = 0;

  function hex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }

  function eventId() {
    var c = root.crypto;
    if (c && c.getRandomValues) return hex(c.getRandomValues(new Uint8Array(16)));
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 14);
  }

  function optedOut() {
    var nav = root.navigator || {};
    if (nav.globalPrivacyControl === true) return true;
    var cookies = (root.document && root.document.cookie) || "";
    return /(?:^|;\s*)p13n_optout=(?!0(?:;|$))[^;]+/.test(cookies);
  }

  function url() {
    return cfg.siteKey ? cfg.endpoint + "?site_key=" + encodeURIComponent(cfg.siteKey)
                       : cfg.endpoint;
  }

  function send(batch) {
    var body = JSON.stringify({ events: batch });
    var nav = root.navigator || {};
    if (nav.sendBeacon && nav.sendBeacon(url(), body)) return;  // a string is sent text/plain
    if (root.fetch) {
      root.fetch(url(), { method: "POST", body: body, keepalive: true,
                          headers: { "content-type": "text/plain" } }).catch(function () {});
    }
  }

  function flush() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    while (buffer.length) send(buffer.splice(0, cfg.batchMax));
  }

  function track(type, fields) {
    if (optedOut()) return false;
    if (buffer.length >= cfg.bufferMax) { dropped++; return false; }
    var ev = { v: 1, event_id: eventId(), type: type, ts: Date.now() };
    if (cfg.user) ev.user = cfg.user;
    for (var k in fields || {}) if (Object.prototype.hasOwnProperty.call(fields, k)) ev[k] = fields[k];
    buffer.push(ev);
    if (buffer.length >= cfg.batchMax) flush();
    else if (timer === null) timer = setTimeout(flush, cfg.flushMs);
    return true;
  }

  function init(options) {
    for (var k in options || {}) if (Object.prototype.hasOwnProperty.call(cfg, k)) cfg[k] = options[k];
    return api;
  }

  var api = { init: init, track: track, flush: flush,
              stats: function () { return { pending: buffer.length, dropped: dropped }; } };
  if (root.addEventListener) {
    root.addEventListener("pagehide", flush);
    root.addEventListener("visibilitychange", function () {
      if (root.document && root.document.visibilityState === "hidden") flush();
    });
  }
  root.p13n = api;
})(typeof window !== "undefined" ? window : globalThis);
