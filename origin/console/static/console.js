// The console's little JavaScript: confirmations, and following an invalidation's status.
"use strict";

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Poll the status until every live edge has applied the invalidation (or two minutes pass).
function watchInvalidation(el) {
  const url = el.dataset.watch;
  const deadline = Date.now() + 120000;
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  const tick = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const doc = await response.json();
        show("inv-state", doc.state);
        show("inv-applied", String(doc.edges.applied));
        show("inv-live", String(doc.edges.live));
        show("inv-pending", doc.edges.pending.length ? `(waiting for ${doc.edges.pending.join(", ")})` : "");
        if (doc.state === "applied") {
          el.classList.add("done");
          return;
        }
      }
    } catch (err) {
      // a failed poll is retried at the next tick
    }
    if (Date.now() < deadline) {
      window.setTimeout(tick, 500);
    }
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-watch]").forEach(watchInvalidation);
});
