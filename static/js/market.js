// Live market pages: subscribe to /ws/market/, keep a book from snapshot + updates,
// resynchronise when a sequence number is skipped.
(function () {
  "use strict";
  const CX = (window.CX = {});

  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function connect(onOpen, onMessage) {
    let delay = 500;
    function open() {
      const ws = new WebSocket(socketUrl("/ws/market/"));
      ws.onopen = () => { delay = 500; onOpen(ws); };
      ws.onmessage = (e) => onMessage(JSON.parse(e.data), ws);
      ws.onclose = () => { setTimeout(open, delay); delay = Math.min(delay * 2, 10000); };
    }
    open();
  }

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

  CX.marketPage = function (root, canTrade) {
    const code = root.dataset.instrument;
    const book = { bids: new Map(), asks: new Map(), seq: null };
    let pending = [];
    const ticker = document.getElementById("ticker");
    const head = document.getElementById("market-head") || ticker;

    function apply(levels, side) {
      for (const [price, qty] of levels) {
        if (qty === 0) side.delete(price); else side.set(price, qty);
      }
    }

    function render() {
      const draw = (side, el, cls, desc) => {
        const prices = [...side.keys()].sort((a, b) => (desc ? b - a : a - b)).slice(0, 12);
        if (!desc) prices.reverse();
        el.innerHTML = prices.map((p) => `<tr class="${cls}"><td class="num">${p}</td><td class="num">${side.get(p)}</td></tr>`).join("");
      };
      draw(book.asks, document.getElementById("asks"), "ask", false);
      draw(book.bids, document.getElementById("bids"), "bid", true);
      document.getElementById("book-empty").hidden = book.bids.size + book.asks.size > 0;
    }

    function addTrades(trades) {
      if (!trades.length) return;
      const tape = document.getElementById("tape");
      for (const t of trades) {
        const stamp = t.time || t.created_at;
        const time = stamp ? new Date(stamp).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }) : "";
        tape.insertAdjacentHTML("afterbegin", `<tr class="${t.aggressor === "sell" ? "ask" : "bid"}"><td>${time}</td><td class="num">${t.price}</td><td class="num">${t.qty}</td></tr>`);
      }
      while (tape.rows.length > 50) tape.deleteRow(-1);
      document.getElementById("tape-empty").hidden = true;
    }

    function setTicker(msg) {
      const set = (field, value) => {
        const el = ticker.querySelector(`[data-field=${field}]`);
        if (el && value !== undefined && el.textContent !== (value || "—")) { el.textContent = value || "—"; flash(el); }
      };
      set("last", msg.ticker.last); set("bid", msg.ticker.bid); set("ask", msg.ticker.ask);
      showState(head, msg.state);
    }

    fetch(`/api/v1/instruments/${encodeURIComponent(code)}/trades/`).then((r) => r.json()).then((data) => {
      addTrades((data.results || []).slice().reverse());
    });

    connect(
      (ws) => { book.seq = null; pending = []; ws.send(JSON.stringify({ action: "subscribe", instrument: code })); },
      (msg, ws) => {
        if (msg.type === "md.snapshot") {
          book.bids = new Map(msg.bids.map(([p, q]) => [p, q]));
          book.asks = new Map(msg.asks.map(([p, q]) => [p, q]));
          book.seq = msg.seq;
          showState(head, msg.state);
          for (const update of pending) if (update.seq > book.seq) handle(update, ws);
          pending = [];
          render();
        } else if (msg.type === "md.update") {
          if (book.seq === null) { pending.push(msg); return; }
          handle(msg, ws);
        }
      }
    );

    function handle(msg, ws) {
      if (msg.seq <= book.seq) return;
      if (msg.seq !== book.seq + 1) {
        // Skipped updates: the depth may be stale. Take a fresh snapshot and go on from it.
        book.seq = null;
        ws.send(JSON.stringify({ action: "subscribe", instrument: code }));
        addTrades(msg.trades);
        showState(head, msg.state);  // a state is whole, not a change: the latest holds
        return;
      }
      book.seq = msg.seq;
      apply(msg.bids, book.bids);
      apply(msg.asks, book.asks);
      addTrades(msg.trades);
      setTicker(msg);
      render();
    }

    if (!canTrade) return;
    const form = document.getElementById("order-form");
    const result = document.getElementById("order-result");
    const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1];
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      const qty = Number.parseInt(data.qty, 10);
      const body = { instrument: code, side: data.side, price: data.price, qty: Number.isNaN(qty) ? data.qty : qty, tif: data.tif };
      result.textContent = "…";
      const response = await fetch("/api/v1/orders/", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(body),
      });
      const reply = await response.json();
      if (response.ok) {
        result.className = "ok";
        result.textContent = `#${reply.id} ${reply.side} ${reply.qty} @ ${reply.price || "market"} — ${reply.status}`;
      } else {
        result.className = "error";
        const fields = Object.entries(reply.fields || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
        result.textContent = fields ? `${reply.detail} (${fields})` : reply.detail;
      }
    });
  };
})();
