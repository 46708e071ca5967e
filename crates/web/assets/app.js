// oc serve's only script. Pages whose <main> has data-live="N" refresh it every N seconds
// while the tab is visible (and at once when it becomes visible again): the page is fetched
// again and its <main> swapped in, so the server renders everything and this file stays
// small. Every action is a plain form, and works without this script.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main || !main.dataset.live) return;
  const seconds = Math.max(2, Number(main.dataset.live) || 5);
  let timer = null;
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) return;
    // Keep what the user is doing: no refresh while a form field has the focus.
    const active = document.activeElement;
    if (active && active.closest("form") && main.contains(active)) return;
    busy = true;
    try {
      const response = await fetch(location.href, {
        headers: { "Accept": "text/html" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("main");
      if (fresh) main.replaceChildren(...fresh.childNodes);
    } catch (_) {
      // The server may be restarting: try again at the next tick.
    } finally {
      busy = false;
    }
  }

  function schedule() {
    clearInterval(timer);
    timer = document.hidden ? null : setInterval(refresh, seconds * 1000);
  }

  document.addEventListener("visibilitychange", () => {
    schedule();
    if (!document.hidden) refresh();
  });
  schedule();
})();
