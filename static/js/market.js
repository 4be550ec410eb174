// Live market pages: the socket helper every page uses, instrument states, and the market
// list's live rows. The trading terminal (terminal.js) builds on these.
(function () {
  "use strict";
  const CX = (window.CX = {});

  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  // Sockets open now, so a page (or a test) can see them; each reopens after a close,
  // waiting longer after each failure (0.5 s doubling to 10 s).
  CX.sockets = new Set();

  function connect(onOpen, onMessage, { path = "/ws/market/", onClose = null } = {}) {
    let delay = 500;
    function open() {
      const ws = new WebSocket(socketUrl(path));
      ws.onopen = () => { delay = 500; CX.sockets.add(ws); onOpen(ws); };
      ws.onmessage = (e) => onMessage(JSON.parse(e.data), ws);
      ws.onclose = () => {
        CX.sockets.delete(ws);
        if (onClose) onClose();
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }
  CX.connect = connect;

  // State names in the page's language, from the page's json_script (the socket sends codes).
  function stateLabel(state) {
    const el = document.getElementById("state-labels");
    const labels = el ? JSON.parse(el.textContent) : {};
    return labels[state] || state;
  }

  // Show an instrument's state (from a snapshot or an update) in `root`: its [data-field=state]
  // text, its data-state attribute (for styles), and any [data-when-state] element shown only
  // in the states it lists.
  function showState(root, state) {
    if (!state || root.dataset.state === state) return;
    root.dataset.state = state;
    const cell = root.querySelector("[data-field=state]");
    if (cell) { cell.textContent = stateLabel(state); flash(cell); }
    root.querySelectorAll("[data-when-state]").forEach((el) => {
      el.hidden = !el.dataset.whenState.split(" ").includes(state);
    });
  }
  CX.showState = showState;

  // Every element with data-instrument inside `container` follows its instrument live: state,
  // and whichever of bid, ask and last it shows.
  CX.marketsPage = function (container) {
    if (!container) return;
    const rows = {};
    container.querySelectorAll("[data-instrument]").forEach((el) => { rows[el.dataset.instrument] = el; });
    connect(
      (ws) => Object.keys(rows).forEach((code) => ws.send(JSON.stringify({ action: "subscribe", instrument: code }))),
      (msg) => {
        const row = rows[msg.instrument];
        if (!row || (msg.type !== "md.update" && msg.type !== "md.snapshot")) return;
        row.dataset.live = "";  // subscribed: the row follows the market from here on
        showState(row, msg.state);
        if (msg.type !== "md.update") return;
        const t = msg.ticker;
        for (const field of ["bid", "ask", "last"]) {
          const cell = row.querySelector(`[data-field=${field}]`);
          const value = t[field] || "—";
          if (cell && cell.textContent !== value) { cell.textContent = value; flash(cell); }
        }
        const traded = (msg.trades || []).reduce((sum, trade) => sum + trade.qty, 0);
        const volume = row.querySelector("[data-field=volume]");
        if (volume && traded) { volume.textContent = String(Number(volume.textContent) + traded); flash(volume); }
        showChange(row, t.last);
      }
    );
  };

  // "16.05" → 1605: prices arrive as decimal strings with two places; sums stay in integer fen.
  function fen(text) {
    const m = /^(-?)(\d+)\.(\d{2})$/.exec(text || "");
    return m ? (m[1] ? -1 : 1) * (Number(m[2]) * 100 + Number(m[3])) : null;
  }
  function cnyText(value) {
    const abs = Math.abs(value);
    return (value < 0 ? "-" : "") + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
  }

  // The 24 h change against the row's price 24 h ago (data-base-fen), as the server shows it.
  function showChange(row, last) {
    const cell = row.querySelector("[data-field=change]");
    const base = Number(row.dataset.baseFen), now = fen(last);
    if (!cell || !row.dataset.baseFen || now === null) return;
    const change = now - base;
    const tenths = base ? Math.round((Math.abs(change) * 1000) / base) * Math.sign(change) : 0;
    const pct = (tenths > 0 ? "+" : tenths < 0 ? "-" : "") + Math.floor(Math.abs(tenths) / 10) + "." + (Math.abs(tenths) % 10) + " %";
    const text = (change > 0 ? "+" : "") + cnyText(change);
    if (cell.firstChild && cell.firstChild.textContent.trim() === text) return;
    cell.textContent = text + " ";
    const small = document.createElement("span");
    small.className = "small";
    small.textContent = "(" + pct + ")";
    cell.appendChild(small);
    cell.classList.toggle("up", change > 0);
    cell.classList.toggle("down", change < 0);
    flash(cell);
  }

  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth;
    el.classList.add("flash");
  }
  CX.flash = flash;

})();
