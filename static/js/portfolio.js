// The portfolio stays current: each event on the organisation's private stream (orders,
// trades, holds, deliveries, settlements, payouts) reloads the page's sections in place —
// the server renders them, so they read exactly as on a fresh load.
(function () {
  "use strict";
  const CX = window.CX;
  const conn = document.getElementById("conn-status");
  const texts = { live: conn.dataset.live, reconnecting: conn.dataset.reconnecting };

  function setConn(state) {
    conn.dataset.conn = state;
    if (texts[state]) conn.textContent = texts[state];
  }

  let timer = null;
  let loading = false;
  let again = false;
  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const section of document.querySelectorAll("[data-refresh]")) {
        const replacement = fresh.getElementById(section.id);
        if (replacement && replacement.innerHTML !== section.innerHTML) {
          section.innerHTML = replacement.innerHTML;
          CX.flash(section);
        }
      }
    } finally {
      loading = false;
      if (again) { again = false; refresh(); }
    }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };

  CX.connect(
    () => setConn("live"),
    (msg) => { if (msg.type !== "error") soon(); },
    { path: "/ws/events/", onClose: () => setConn("reconnecting") },
  );
})();
