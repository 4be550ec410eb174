// The trading terminal of one instrument: depth ladder, tape and candle chart from the public
// market stream; order entry, the organisation's open orders and fills from the REST API and
// the private stream. Both streams recover from a dropped connection by reading a fresh
// snapshot (the book) or the lists again (orders, fills, balances).
(function () {
  "use strict";
  const CX = window.CX;

  // ---- money, as integer fen (BigInt): prices and values are never floats here
  function fenOf(text) {
    const m = /^\s*(\d{1,12})(?:\.(\d{1,2}))?\s*$/.exec(String(text ?? ""));
    return m ? BigInt(m[1]) * 100n + BigInt((m[2] || "").padEnd(2, "0")) : null;
  }
  function cny(fen) {
    const neg = fen < 0n;
    const a = neg ? -fen : fen;
    return `${neg ? "-" : ""}${(a / 100n).toLocaleString("en-US")}.${(a % 100n).toString().padStart(2, "0")}`;
  }
  const feeOf = (value, bps) => (value * BigInt(bps) + 9999n) / 10000n; // rounded up, as holds are
  const escapeHtml = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const chinaTime = (iso) => new Date(iso).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  // "2026-12-08 01:54:59" in China time, as the server writes times.
  const chinaDateTime = (iso) => new Date(iso).toLocaleString("sv-SE", { timeZone: "Asia/Shanghai" });
  const csrf = () => (document.cookie.match(/csrftoken=([^;]+)/) || [])[1];

  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") options.headers["X-CSRFToken"] = csrf();
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    const response = await fetch(url, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  }

  // Calls fn at most once per `ms`, the last call winning (bursts of events → one reload).
  function debounce(fn, ms) {
    let timer = null;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function duration(seconds) {
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24, m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    return (d ? `${d} d ` : "") + (d || h ? `${h} h ` : "") + `${String(m).padStart(2, "0")} min ${String(s).padStart(2, "0")} s`;
  }

  // ---- candle chart (uPlot: high/low series set the scale, a draw hook paints the candles)
  const STEP = { "1m": 60, "1h": 3600, "1d": 86400 };
  const CHINA_OFFSET = 8 * 3600;

  function candleChart(el, lastEl, emptyEl, onShown) {
    const data = { t: [], o: [], h: [], l: [], c: [], v: [] };
    let interval = "1m";
    let plot = null;

    function drawCandles(u) {
      const ctx = u.ctx;
      const n = data.t.length;
      const slot = n > 1 ? Math.abs(u.valToPos(data.t[1], "x", true) - u.valToPos(data.t[0], "x", true)) : 16;
      const width = Math.max(3, Math.min(18, slot * 0.6));
      ctx.save();
      for (let i = 0; i < n; i++) {
        const x = u.valToPos(data.t[i], "x", true);
        const [yo, yh, yl, yc] = [data.o[i], data.h[i], data.l[i], data.c[i]].map((v) => u.valToPos(v, "y", true));
        const up = data.c[i] >= data.o[i];
        ctx.strokeStyle = ctx.fillStyle = up ? "#0a8a4a" : "#c62f2f";
        ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, yh); ctx.lineTo(Math.round(x) + 0.5, yl); ctx.stroke();
        ctx.fillRect(x - width / 2, Math.min(yo, yc), width, Math.max(1, Math.abs(yc - yo)));
      }
      ctx.restore();
    }

    function xRange() {
      const step = STEP[interval];
      const n = data.t.length;
      return n ? [data.t[0] - step, data.t[n - 1] + step] : [0, 1];
    }

    function render() {
      emptyEl.hidden = data.t.length > 0;
      el.hidden = data.t.length === 0;
      if (!data.t.length) { lastEl.textContent = ""; return; }
      onShown();
      const i = data.t.length - 1;
      const f = (v) => cny(BigInt(v));
      lastEl.textContent = `${chinaDateTime(data.t[i] * 1000)} · O ${f(data.o[i])} H ${f(data.h[i])} L ${f(data.l[i])} C ${f(data.c[i])} · ${data.v[i]} SCU·h`;
      lastEl.dataset.close = f(data.c[i]);
      const series = [data.t, data.h, data.l];
      if (!plot) {
        plot = new uPlot({
          width: Math.max(280, el.clientWidth), height: 260, legend: { show: false },
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Asia/Shanghai"),
          // Prices in fen: a margin of a tenth of the range, at least 1 % of the price, and
          // axis steps of whole fen.
          scales: { x: { time: true, range: () => xRange() }, y: { range: (u, lo, hi) => {
            const pad = Math.max(Math.ceil(hi * 0.01), Math.ceil((hi - lo) * 0.1));
            return [Math.max(0, lo - pad), hi + pad];
          } } },
          series: [{}, { stroke: "transparent", points: { show: false } }, { stroke: "transparent", points: { show: false } }],
          axes: [{}, { size: 60, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
                       values: (u, vals) => vals.map((v) => cny(BigInt(Math.round(v)))) }],
          hooks: { draw: [drawCandles] },
        }, series, el);
        new ResizeObserver(() => plot && plot.setSize({ width: Math.max(280, el.clientWidth), height: 260 })).observe(el);
      } else {
        plot.setData(series);
      }
    }

    async function load(which) {
      interval = which;
      const code = el.closest("[data-instrument]").dataset.instrument;
      const reply = await api("GET", `/api/v1/instruments/${encodeURIComponent(code)}/candles/?interval=${which}`);
      if (!reply.ok) return;
      for (const key of Object.keys(data)) data[key] = [];
      for (const k of reply.data.candles) {
        data.t.push(Date.parse(k.start) / 1000);
        data.o.push(Number(fenOf(k.open))); data.h.push(Number(fenOf(k.high)));
        data.l.push(Number(fenOf(k.low))); data.c.push(Number(fenOf(k.close))); data.v.push(k.volume);
      }
      render();
    }

    // A trade from the market stream: into the last candle, or a new one.
    function add(trade) {
      const step = STEP[interval];
      const at = Date.parse(trade.time || trade.created_at) / 1000;
      const start = Math.floor((at + CHINA_OFFSET) / step) * step - CHINA_OFFSET;
      const price = Number(fenOf(trade.price));
      const n = data.t.length;
      if (n && data.t[n - 1] === start) {
        data.h[n - 1] = Math.max(data.h[n - 1], price); data.l[n - 1] = Math.min(data.l[n - 1], price);
        data.c[n - 1] = price; data.v[n - 1] += trade.qty;
      } else if (!n || start > data.t[n - 1]) {
        data.t.push(start); data.o.push(price); data.h.push(price); data.l.push(price); data.c.push(price); data.v.push(trade.qty);
      }
    }

    return { load, add, render };
  }

  // ---- the terminal
  CX.terminal = function (root, cfg) {
    const T = cfg.texts;
    const code = cfg.code;
    const book = { bids: new Map(), asks: new Map(), seq: null };
    let pending = [];
    const $ = (id) => document.getElementById(id);
    const head = $("market-head");
    const ticker = $("ticker");
    const conn = $("conn-status");
    const chart = candleChart($("chart"), $("chart-last"), $("chart-empty"), () => partShown("chart"));
    const seenTrades = new Set();
    const shared = { book, setState: null, preview: () => {} };

    // Marks the moment the book, the tape and the chart first all show data (the figure
    // web.terminal_ready_ms of bench/web.py reads it from the page's performance timeline).
    const ready = { book: false, tape: false, chart: false, marked: false };
    function partShown(part) {
      ready[part] = true;
      if (!ready.marked && ready.book && ready.tape && ready.chart) {
        ready.marked = true;
        performance.mark("cx-terminal-ready");
      }
    }

    function setConn(state) {
      conn.dataset.conn = state;
      conn.textContent = T[state];
    }

    // -- depth ladder: the 12 best levels a side, with bars by size
    function renderBook() {
      const levels = (side, desc) => [...side.keys()].sort((a, b) => (desc ? Number(fenOf(b) - fenOf(a)) : Number(fenOf(a) - fenOf(b)))).slice(0, 12);
      const asks = levels(book.asks, false);
      const bids = levels(book.bids, true);
      const biggest = Math.max(1, ...asks.map((p) => book.asks.get(p)), ...bids.map((p) => book.bids.get(p)));
      const rows = (prices, side, cls) => {
        let total = 0;
        const out = prices.map((p) => {
          const qty = side.get(p);
          total += qty;
          const width = Math.round((qty / biggest) * 100);
          return `<tr class="${cls}"><td class="num">${escapeHtml(p)}</td><td class="num size"><span class="bar" style="width:${width}%"></span><span class="qty">${qty}</span></td><td class="num muted">${total}</td></tr>`;
        });
        return out;
      };
      $("asks").innerHTML = rows(asks, book.asks, "ask").reverse().join("");
      $("bids").innerHTML = rows(bids, book.bids, "bid").join("");
      $("book-empty").hidden = book.bids.size + book.asks.size > 0;
      const bestBid = bids.length ? fenOf(bids[0]) : null;
      const bestAsk = asks.length ? fenOf(asks[0]) : null;
      $("spread-cell").textContent = bestBid !== null && bestAsk !== null ? `${T.spread} ${cny(bestAsk - bestBid)} CNY` : "";
      shared.preview();
    }

    function applyLevels(levels, side) {
      for (const [price, qty] of levels) { if (qty === 0) side.delete(price); else side.set(price, qty); }
    }

    function addTrades(trades, live) {
      if (!trades.length) return;
      const tape = $("tape");
      for (const t of trades) {
        if (t.id !== undefined) { if (seenTrades.has(t.id)) continue; seenTrades.add(t.id); }
        const stamp = t.time || t.created_at;
        tape.insertAdjacentHTML("afterbegin", `<tr class="${t.aggressor === "sell" ? "ask" : "bid"}"><td>${stamp ? chinaTime(stamp) : ""}</td><td class="num">${escapeHtml(t.price)}</td><td class="num">${t.qty}</td></tr>`);
        if (live) chart.add(t);
      }
      while (tape.rows.length > 50) tape.deleteRow(-1);
      $("tape-empty").hidden = true;
      partShown("tape");
      if (live) chart.render();
    }

    function setTicker(msg) {
      const set = (field, value) => {
        const el = ticker.querySelector(`[data-field=${field}]`);
        if (el && value !== undefined && el.textContent !== (value || "—")) { el.textContent = value || "—"; CX.flash(el); }
      };
      set("last", msg.ticker.last); set("bid", msg.ticker.bid); set("ask", msg.ticker.ask);
      setState(msg.state);
    }

    function setState(state) {
      const before = head.dataset.state;
      CX.showState(head, state);
      if (state && state !== before && (state === "auction" || state === "pre_open")) {
        api("GET", `/api/v1/instruments/${encodeURIComponent(code)}/`).then((r) => { if (r.ok) cfg.auction_ends_at = r.data.auction_ends_at; });
      }
    }

    // -- the public stream
    CX.connect(
      (ws) => { book.seq = null; pending = []; ws.send(JSON.stringify({ action: "subscribe", instrument: code })); },
      (msg, ws) => {
        if (msg.type === "md.snapshot") {
          book.bids = new Map(msg.bids.map(([p, q]) => [p, q]));
          book.asks = new Map(msg.asks.map(([p, q]) => [p, q]));
          book.seq = msg.seq;
          setState(msg.state);
          for (const update of pending) if (update.seq > book.seq) handle(update, ws);
          pending = [];
          renderBook();
          setConn("live");
          partShown("book");
        } else if (msg.type === "md.update") {
          if (book.seq === null) { pending.push(msg); return; }
          handle(msg, ws);
        }
      },
      { onClose: () => setConn("reconnecting") },
    );

    function handle(msg, ws) {
      if (msg.seq <= book.seq) return;
      addTrades(msg.trades, true);
      if (msg.seq !== book.seq + 1) {
        // Skipped updates: the depth may be stale. Take a fresh snapshot and go on from it.
        book.seq = null;
        ws.send(JSON.stringify({ action: "subscribe", instrument: code }));
        setState(msg.state);  // a state is whole, not a change: the latest holds
        return;
      }
      book.seq = msg.seq;
      applyLevels(msg.bids, book.bids);
      applyLevels(msg.asks, book.asks);
      setTicker(msg);
      renderBook();
    }

    api("GET", `/api/v1/instruments/${encodeURIComponent(code)}/trades/`).then((r) => {
      if (r.ok) addTrades((r.data.results || []).slice().reverse(), false);
    });
    const intervalSelect = $("chart-interval");
    chart.load(intervalSelect.value);
    intervalSelect.addEventListener("change", () => chart.load(intervalSelect.value));

    // -- gate closure countdown and the auction's end
    function tick() {
      const left = Math.floor((Date.parse(cfg.gate_closure_at) - Date.now()) / 1000);
      $("gate-countdown").textContent = left > 0 ? `${T.closes_in} ${duration(left)}` : T.gate_closed;
      const info = $("auction-info");
      if (cfg.auction_ends_at) {
        const ends = Math.max(0, Math.floor((Date.parse(cfg.auction_ends_at) - Date.now()) / 1000));
        info.textContent = `· ${T.auction_ends} ${chinaTime(cfg.auction_ends_at)} (${duration(ends)})`;
      } else {
        info.textContent = "";
      }
    }
    tick();
    setInterval(tick, 1000);

    if (!cfg.signed_in) return;
    shared.setState = setState;
    privateStream(cfg, shared);
  };

  // ---- the organisation's side: order entry, open orders, fills, balances, private stream
  function privateStream(cfg, hooks) {
    const { book, setState } = hooks;
    const T = cfg.texts;
    const code = cfg.code;
    const $ = (id) => document.getElementById(id);
    const form = $("order-form");

    async function loadBalances() {
      const r = await api("GET", "/api/v1/balances/");
      if (!r.ok || !$("available")) return;
      cfg.available = r.data.available;
      $("available").textContent = r.data.available;
      $("held").textContent = r.data.held;
      preview();
    }

    async function loadOrders() {
      const r = await api("GET", `/api/v1/orders/?status=live&instrument=${encodeURIComponent(code)}`);
      if (!r.ok) return;
      const body = $("my-orders");
      const fresh = document.createElement("tbody");
      fresh.innerHTML = (r.data.results || []).map(orderRow).join("");
      // A row being amended stays as the person left it (while its order is still open).
      const editing = body.querySelector("tr.amending");
      const same = editing && fresh.querySelector(`tr[data-order="${editing.dataset.order}"]`);
      if (same) same.replaceWith(editing);
      body.replaceChildren(...fresh.rows);
      $("my-orders-empty").hidden = body.rows.length > 0;
    }

    function orderRow(o) {
      const status = T.statuses[o.status] || o.status;
      const price = o.type === "market" ? T.market : o.price;
      const amend = o.type === "limit"
        ? `<button type="button" class="small secondary" data-act="amend">${T.amend}</button>` : "";
      return `<tr data-order="${o.id}" data-price="${escapeHtml(o.price || "")}" data-remaining="${o.remaining}" class="${o.side}">
        <td>${o.id}</td><td class="${o.side === "buy" ? "bid" : "ask"}">${T[o.side]}</td><td class="num">${escapeHtml(price)}</td>
        <td class="num">${o.qty}</td><td class="num">${o.filled}</td><td>${escapeHtml(status)}</td><td>${escapeHtml(o.tif)}</td>
        <td class="actions"><button type="button" class="small danger" data-act="cancel">${T.cancel}</button> ${amend}
          <span class="row-error error small"></span></td></tr>`;
    }

    async function loadFills() {
      const r = await api("GET", `/api/v1/fills/?instrument=${encodeURIComponent(code)}`);
      if (!r.ok) return;
      const body = $("my-fills");
      body.innerHTML = (r.data.results || []).slice(0, 50).map((f) =>
        `<tr data-fill="${f.id}"><td>${chinaDateTime(f.created_at)}</td><td class="${f.side === "buy" ? "bid" : "ask"}">${T[f.side]}</td>
         <td class="num">${escapeHtml(f.price)}</td><td class="num">${f.qty}</td><td class="num">${escapeHtml(f.fee)}</td></tr>`).join("");
      $("my-fills-empty").hidden = body.rows.length > 0;
    }

    const reloadOrders = debounce(loadOrders, 150);
    const reloadFills = debounce(loadFills, 150);
    const reloadBalances = debounce(loadBalances, 300);
    function reloadAll() { loadOrders(); loadFills(); if (cfg.can_trade) loadBalances(); }

    // -- the private stream: every event of this instrument reloads what it changed
    let seq = null;
    CX.connect(
      () => {},
      (msg) => {
        if (msg.type === "hello") { seq = null; reloadAll(); return; }
        if (msg.seq !== undefined) {
          const gap = seq !== null && msg.seq !== seq + 1;
          seq = msg.seq;
          if (gap) { reloadAll(); return; }
        }
        if (msg.type === "order" && msg.instrument_id === cfg.id) { reloadOrders(); reloadBalances(); }
        else if (msg.type === "trade" && msg.instrument === code) { reloadFills(); reloadOrders(); reloadBalances(); }
        else if (msg.type === "instrument.state" && msg.instrument === code) { setState(msg.state); reloadOrders(); }
        else if (msg.type === "error" && msg.request_id === undefined) { $("my-orders-error").textContent = msg.detail; }
      },
      { path: "/ws/events/" },
    );

    // -- cancel and amend from the open orders
    $("my-orders").addEventListener("click", async (e) => {
      const button = e.target.closest("button[data-act]");
      if (!button) return;
      const row = button.closest("tr[data-order]");
      const id = row.dataset.order;
      const error = row.querySelector(".row-error");
      error.textContent = "";
      if (button.dataset.act === "cancel") {
        button.disabled = true;
        const r = await api("DELETE", `/api/v1/orders/${id}/`);
        if (r.ok) { row.querySelector("td:nth-child(6)").textContent = T.cancelling; }
        else { error.textContent = r.data.detail; button.disabled = false; }
      } else if (button.dataset.act === "amend") {
        row.classList.add("amending");
        const cell = row.querySelector("td.actions");
        cell.insertAdjacentHTML("afterbegin", `<form class="amend-form inline-form">
          <input name="price" inputmode="decimal" size="7" value="${escapeHtml(row.dataset.price)}" aria-label="price">
          <input name="qty" inputmode="numeric" size="5" value="${row.dataset.remaining}" aria-label="qty">
          <button type="submit" class="small">${T.save}</button><button type="button" class="small secondary" data-act="back">${T.back}</button></form>`);
        button.hidden = true;
      } else if (button.dataset.act === "back") {
        row.classList.remove("amending");
        loadOrders();
      }
    });
    $("my-orders").addEventListener("submit", async (e) => {
      e.preventDefault();
      const amendForm = e.target;
      const row = amendForm.closest("tr[data-order]");
      const data = Object.fromEntries(new FormData(amendForm));
      const change = {};
      if (data.price.trim() && data.price.trim() !== row.dataset.price) change.price = data.price.trim();
      if (data.qty.trim() && data.qty.trim() !== row.dataset.remaining) {
        const qty = Number.parseInt(data.qty, 10);
        change.qty = String(qty) === data.qty.trim() ? qty : data.qty;
      }
      const error = row.querySelector(".row-error");
      const r = await api("PATCH", `/api/v1/orders/${row.dataset.order}/`, change);
      if (r.ok) { row.classList.remove("amending"); error.textContent = ""; reloadOrders(); }
      else {
        const fields = Object.entries(r.data.fields || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
        error.textContent = fields ? `${r.data.detail} (${fields})` : r.data.detail;
      }
    });

    if (!cfg.can_trade) return;

    // -- order entry
    const result = $("order-result");
    const confirmBox = $("order-confirm");
    let clientOrderId = null;   // one per order the person means to place: a repeated click repeats it
    let confirmed = null;

    function fieldsShown() {
      const type = form.elements.type.value;
      const tif = form.elements.tif;
      for (const el of form.querySelectorAll("[data-for-type]")) {
        const on = el.dataset.forType === type;
        if (el.tagName === "OPTION") el.disabled = !on; else el.hidden = !on;
      }
      if (tif.selectedOptions[0].disabled) tif.value = "IOC";
      form.querySelector("[data-for-tif=GTD]").hidden = !(type === "limit" && tif.value === "GTD");
      const post = form.elements.post_only;
      post.disabled = type !== "limit" || tif.value === "IOC" || tif.value === "FOK";
      if (post.disabled) post.checked = false;
    }

    function body() {
      const d = Object.fromEntries(new FormData(form));
      const asInt = (v) => { const n = Number.parseInt(v, 10); return String(n) === String(v).trim() ? n : v; };
      const out = { instrument: code, side: d.side, type: d.type, tif: d.tif, qty: asInt(d.qty) };
      if (d.type === "limit") { out.price = d.price; out.post_only = Boolean(d.post_only); }
      else out.protect_ticks = asInt(d.protect_ticks);
      if (d.type === "limit" && d.tif === "GTD") out.expires_at = d.expires_at ? `${d.expires_at}${d.expires_at.length === 16 ? ":00" : ""}+08:00` : null;
      return out;
    }

    // The value of the order in fen and the price it was valued at (the touch for a market order).
    function valued(b) {
      const qty = typeof b.qty === "number" ? BigInt(b.qty) : null;
      let price = b.type === "limit" ? fenOf(b.price) : null;
      let atTouch = false;
      if (b.type === "market") {
        const side = b.side === "buy" ? book.asks : book.bids;
        const prices = [...side.keys()].map(fenOf).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        price = prices.length ? (b.side === "buy" ? prices[0] : prices[prices.length - 1]) : null;
        atTouch = true;
      }
      return { qty, price, atTouch, value: qty !== null && price !== null ? price * qty : null };
    }

    function preview() {
      const out = $("order-preview");
      if (!out) return;
      const b = body();
      const { value, atTouch } = valued(b);
      out.classList.remove("error");
      if (value === null) { out.textContent = atTouch && typeof b.qty === "number" ? T.no_touch : ""; return; }
      const fee = feeOf(value, cfg.taker_bps);
      let text = `${T.notional} ${cny(value)} CNY`;
      if (b.side === "buy") text += ` · ${T.fee_up_to} ${cny(fee)} · ${T.hold} ${cny(value + fee)} CNY`;
      else text += ` · ${T.receive} ${cny(value - fee)} CNY`;
      if (atTouch) text += ` (${T.at_touch})`;
      const available = fenOf(cfg.available);
      if (b.side === "buy" && available !== null && value + fee > available) { text += ` — ${T.short}`; out.classList.add("error"); }
      out.textContent = text;
    }
    hooks.preview = preview;

    function clearErrors() {
      for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
      for (const el of form.querySelectorAll(".has-error")) el.classList.remove("has-error");
    }

    function showErrors(data) {
      for (const [field, message] of Object.entries(data.fields || {})) {
        const el = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) || form.querySelector('[data-error-for="non_field_errors"]');
        el.textContent = message;
        const wrap = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
        if (wrap) wrap.classList.add("has-error");
      }
    }

    async function send(b) {
      confirmBox.hidden = true;
      clientOrderId = clientOrderId || (crypto.randomUUID ? crypto.randomUUID().replace(/-/g, "") : `${Date.now()}${Math.random()}`.replace(".", ""));
      b.client_order_id = clientOrderId;
      $("order-submit").disabled = true;
      result.className = "";
      result.textContent = "…";
      try {
        const r = await api("POST", "/api/v1/orders/", b);
        clearErrors();
        if (r.ok) {
          const o = r.data;
          result.className = "ok";
          result.textContent = `#${o.id} ${T[o.side]} ${o.qty} @ ${o.price || T.market} — ${T.statuses[o.status] || o.status}`;
          clientOrderId = null;
          reloadOrders(); reloadBalances();
        } else {
          result.className = "error";
          result.textContent = r.data.detail;
          showErrors(r.data);
          if (r.status < 500) clientOrderId = null;  // refused: nothing was placed under this id
        }
      } catch (err) {
        result.className = "error";
        result.textContent = String(err);  // unknown outcome: the same client_order_id is sent again
      } finally {
        $("order-submit").disabled = false;
      }
    }

    form.addEventListener("change", () => { fieldsShown(); preview(); });
    form.addEventListener("input", () => { confirmBox.hidden = true; clientOrderId = null; preview(); });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const b = body();
      const { value } = valued(b);
      const limit = fenOf(cfg.confirm_above);
      if (value !== null && limit !== null && value > limit) {
        confirmed = b;
        $("order-confirm-text").textContent = T.confirm.replace("%(value)s", cny(value));
        confirmBox.hidden = false;
        $("order-confirm-yes").focus();
        return;
      }
      send(b);
    });
    $("order-confirm-yes").addEventListener("click", () => { if (confirmed) send(confirmed); confirmed = null; });
    $("order-confirm-no").addEventListener("click", () => { confirmBox.hidden = true; confirmed = null; });
    fieldsShown();
    preview();
  }
})();
