// oc serve's only script. Every page works without it; with it:
// - a page whose <main> has data-live="N" refreshes <main> every N seconds while the tab is
//   visible (and at once when it becomes visible again), by fetching the page again;
// - an action's form is sent in the background and the answer's <main> swapped in, so the
//   page shows the new state (or why not) without a reload.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main) return;
  let busy = false;

  // Swaps in the <main> of an HTML page, if it has one.
  function swap(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
    if (!fresh) return false;
    main.replaceChildren(...fresh.childNodes);
    return true;
  }

  async function refresh() {
    if (busy || document.hidden) return;
    // Keep what the user is doing: no refresh while a form field has the focus.
    const active = document.activeElement;
    if (active && active.closest("form") && main.contains(active)) return;
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) swap(await response.text());
    } catch (_) {
      // The server may be restarting: try again at the next tick.
    } finally {
      busy = false;
    }
  }

  // Actions: POST the form, follow the server's 303 back to the page, show it.
  main.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    event.preventDefault();
    busy = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      const text = await response.text();
      if (!swap(text)) {
        const p = document.createElement("p");
        p.className = "error";
        p.setAttribute("role", "alert");
        p.textContent = text.trim() || "The action failed (" + response.status + ").";
        main.prepend(p);
      }
      // After a redirect (303 back to a page), the address bar shows that page.
      if (response.redirected && response.url !== location.href) {
        history.replaceState(null, "", response.url);
      }
    } catch (_) {
      form.submit();
    } finally {
      busy = false;
    }
  });

  const seconds = Number(main.dataset.live);
  if (!seconds) return;
  let timer = null;
  function schedule() {
    clearInterval(timer);
    timer = document.hidden ? null : setInterval(refresh, Math.max(2, seconds) * 1000);
  }
  document.addEventListener("visibilitychange", () => {
    schedule();
    if (!document.hidden) refresh();
  });
  schedule();
})();
