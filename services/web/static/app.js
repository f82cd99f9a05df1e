// htmx-style partial refresh, without a build step: an element with data-refresh="URL" has its
// content replaced by URL's HTML every data-refresh-every milliseconds. The server renders that
// HTML with autoescaping, so it is safe to insert. No inline script: the CSP forbids it.
"use strict";

function refresh(element) {
  const url = element.dataset.refresh;
  const every = Number(element.dataset.refreshEvery || 2000);
  const tick = async () => {
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { "X-Refresh": "1" },
      });
      if (response.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (response.ok) {
        element.innerHTML = await response.text();
        element.dataset.refreshedAt = String(Date.now());
      }
    } catch (error) {
      // the server restarting: try again at the next tick
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
});
