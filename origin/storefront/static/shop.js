/* The storefront's one script: fills the rail from the edge, tracks views, and shows the
 * debug panel when asked (?debug=1, remembered in a cookie; ?debug=0 turns it off).
 *
 * The page itself is the same for everyone (the edge caches it); what is personal comes from
 * the edge's rail route (/p13n/v1/rail/{route}, private, no-store) after the page loaded,
 * as a real shop includes a personalized fragment. A rail item the catalog labels carries its
 * name, picture and price: its tile is drawn from the answer itself. The tiles of the others
 * (a name made from the sku, a placeholder picture) come from /shop/tiles, cacheable by the
 * skus alone.
 */
(function () {
  "use strict";
  var DEBUG_COOKIE = "p13n_shop_debug";

  function debugOn() {
    var asked = new URLSearchParams(window.location.search).get("debug");
    if (asked === "1") document.cookie = DEBUG_COOKIE + "=1; path=/shop; SameSite=Lax";
    if (asked === "0") document.cookie = DEBUG_COOKIE + "=; path=/shop; max-age=0; SameSite=Lax";
    if (asked === "1" || asked === "0") return asked === "1";
    return new RegExp("(?:^|;\\s*)" + DEBUG_COOKIE + "=1(?:;|$)").test(document.cookie);
  }

  function setText(id, value) {
    document.getElementById(id).textContent = value;
  }

  function showDebug(route, cacheStatus, doc) {
    var variants = Object.keys(doc.variants || {}).map(function (k) {
      return k + "=" + doc.variants[k];
    });
    setText("debug-route", route);
    setText("debug-cache-status", cacheStatus || "(none: not answered by an edge)");
    setText("debug-variants", variants.length ? variants.join(", ") : "(no experiment)");
    setText("debug-degraded", doc.degraded ? "yes" : "no");
    var body = document.querySelector("#debug-items tbody");
    (doc.items || []).forEach(function (item, i) {
      var row = body.insertRow();
      [String(i + 1), item.item, Number(item.score).toFixed(3), item.reason].forEach(function (v) {
        row.insertCell().textContent = v;
      });
    });
    document.getElementById("debug").hidden = false;
    document.body.classList.add("debugging");
  }

  function markReasons(list, items) {
    var reasons = {};
    items.forEach(function (item) { reasons[item.item] = item.reason; });
    list.querySelectorAll(".tile").forEach(function (tile) {
      var badge = document.createElement("span");
      badge.className = "reason";
      badge.textContent = reasons[tile.dataset.sku] || "";
      tile.appendChild(badge);
    });
  }

  function labelledTile(item) {
    var li = document.createElement("li");
    li.className = "tile";
    li.dataset.sku = item.item;
    var href = "/shop/p/" + encodeURIComponent(item.item);
    var pic = document.createElement("a");
    pic.href = href;
    var img = document.createElement("img");
    img.src = item.image_url || "/shop/img/" + encodeURIComponent(item.item) + ".svg";
    img.alt = item.name || item.item;
    img.width = 240;
    img.height = 180;
    pic.appendChild(img);
    var name = document.createElement("a");
    name.className = "name";
    name.href = href;
    name.textContent = item.name || item.item;
    li.append(pic, name);
    if (typeof item.price === "number") {
      var price = document.createElement("span");
      price.className = "price";
      price.textContent = "$" + item.price.toLocaleString("en-US", {
        minimumFractionDigits: 2, maximumFractionDigits: 2 });
      li.appendChild(price);
    }
    return li;
  }

  async function fillRail(list, items) {
    var bare = items.filter(function (i) { return !i.name; });
    var fetched = {};
    if (bare.length) {
      var skus = bare.map(function (i) { return encodeURIComponent(i.item); }).join(",");
      var tiles = await fetch("/shop/tiles?items=" + skus);
      if (tiles.ok) {
        var holder = document.createElement("template");
        holder.innerHTML = await tiles.text();
        holder.content.querySelectorAll(".tile").forEach(function (t) {
          fetched[t.dataset.sku] = t;
        });
      }
    }
    list.replaceChildren();
    items.forEach(function (item) {
      var tile = item.name ? labelledTile(item) : fetched[item.item];
      if (tile) list.appendChild(tile);
    });
  }

  async function loadRail(debug) {
    var section = document.getElementById("rail");
    var route = section.dataset.route;
    var status = document.getElementById("rail-status");
    var list = document.getElementById("rail-items");
    var resp;
    try {
      resp = await fetch("/p13n/v1/rail/" + encodeURIComponent(route) + "?k=8",
                         { credentials: "same-origin" });
    } catch (err) {
      status.textContent = "Recommendations are unavailable right now.";
      return;
    }
    if (!resp.ok) {
      status.textContent = "Recommendations come from the edge (this host answered " +
                           resp.status + ").";
      return;
    }
    var doc = await resp.json();
    var items = doc.items || [];
    if (items.length) {
      await fillRail(list, items);
      markReasons(list, items);
    }
    status.textContent = items.length ? "" : "Nothing to recommend yet.";
    status.hidden = items.length > 0;
    section.dataset.loaded = "true";
    if (debug) showDebug(route, resp.headers.get("cache-status"), doc);
  }

  function track() {
    var product = document.getElementById("product");
    if (!product || !window.p13n) return;
    var fields = { item: product.dataset.sku, category: product.dataset.category,
                   price: Number(product.dataset.price) };
    window.p13n.track("view", fields);
    document.getElementById("add-to-cart").addEventListener("click", function () {
      window.p13n.track("add_to_cart", Object.assign({ qty: 1 }, fields));
      window.p13n.flush();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    track();
    loadRail(debugOn());
  });
})();
