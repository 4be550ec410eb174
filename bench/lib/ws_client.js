// Market-data subscribers for bench/ws_fanout.py: N WebSocket clients of /ws/market/.
//
//   WS_URL=ws://127.0.0.1:PORT/ws/market/ ORIGIN=http://127.0.0.1:PORT INSTRUMENT=CODE CLIENTS=1000 \
//   NODE_PATH=bench/.node/node_modules node bench/lib/ws_client.js
//
// Each client subscribes ({"action":"subscribe","instrument":CODE}) and waits for its
// md.snapshot; then "ready" is printed. Commands on stdin, one per line:
//   start NAME   start counting (every client's sequence check restarts)
//   stop         print the phase's figures as one JSON line
//   quit         close every socket and exit
//   commit SEQ MS  the engine's commit of md seq SEQ was seen at epoch MS (ms, fractional)
// Per md.update message received: the sequence check (a gap is seq > last + 1; the number
// of skipped seqs is summed), and three delays to the message's arrival here, each in a
// histogram of 0.1 ms buckets: from the newest trade's "time" in it (the engine's
// created_at, set before the rest of its transaction), from its "published_at" (when the
// engine sent it, after the commit) and from the commit of its seq: the earlier of the
// time given on stdin and published_at (messages whose commit time comes later wait for
// it). No permessage-deflate unless COMPRESS=1 (what a browser would negotiate). The client
// reads only what it needs (seq, the last trade time, published_at) from the message's
// bytes, without decoding or validating the rest. The clients are spread over
// CLIENT_PROCESSES processes (default 2, one per core here), so one process's queue of
// sockets does not stand in for 1,000 independent clients; the first process relays the
// commands and merges the figures.
'use strict';
const crypto = require('crypto');
const EventEmitter = require('events');
const net = require('net');
const WebSocket = require('ws');
const { fork } = require('child_process');
const readline = require('readline');
const { performance } = require('perf_hooks');

const url = process.env.WS_URL;
const origin = process.env.ORIGIN;
const instrument = process.env.INSTRUMENT;
const clients = parseInt(process.env.CLIENTS || '1000', 10);
const processes = parseInt(process.env.CLIENT_PROCESSES || '2', 10);
const isWorker = process.env.CLIENT_FIRST !== undefined; // this process holds clients FIRST … FIRST + CLIENTS - 1
const compress = process.env.COMPRESS === '1';
const nowMs = () => performance.timeOrigin + performance.now();

const TIME_KEY = Buffer.from('"time":"');
const PUBLISHED_KEY = '"published_at":"';
const AGGRESSOR_KEY = Buffer.from('"aggressor"');
const BUCKET_MS = 0.1;
const BUCKETS = 600000; // up to 60 s
const hist = new Uint32Array(BUCKETS); // delay from the newest trade's "time"
const histPublished = new Uint32Array(BUCKETS); // delay from the message's "published_at"
const histCommit = new Uint32Array(BUCKETS); // delay from the commit time sent on stdin ("commit SEQ MS")
let counting = false;
let stats = null;
const commitAt = new Map(); // seq → epoch ms of the engine's commit (as observed by the bench)
const waiting = new Map(); // seq → arrival times of messages whose commit time is not known yet
const spans = new Map(); // seq → [published_at, first arrival, last arrival] (epoch ms)

function bucket(delay) {
  return Math.max(0, Math.min(BUCKETS - 1, Math.floor(delay / BUCKET_MS)));
}

// The commit of a seq was before both the bench saw it and the engine stamped published_at:
// the earlier of the two is the closer bound.
function commitTime(seq, seen) {
  const span = spans.get(seq);
  return span === undefined ? seen : Math.min(seen, span[0]);
}

function recordCommitDelay(delay) {
  histCommit[bucket(delay)] += 1;
  stats.commit_timed += 1;
  if (delay > stats.commit_max_ms) stats.commit_max_ms = delay;
}

function reset(name) {
  hist.fill(0);
  histCommit.fill(0);
  histPublished.fill(0);
  commitAt.clear();
  waiting.clear();
  spans.clear();
  stats = {
    name, messages: 0, timed: 0, published_timed: 0, commit_timed: 0, commit_max_ms: 0, gaps: 0, gap_events: 0, clients_with_gaps: 0, out_of_order: 0,
    seen: new Map(), bytes: 0, max_ms: 0, closed: 0,
    started: nowMs(), cpu: process.cpuUsage(),
  };
  for (const s of subs) { s.last = -1; s.gapped = false; }
}

// "2026-11-24T08:00:00.123456+00:00" at s[i] → epoch ms (fractional).
function parseIso(s, i) {
  const num = (a, n) => parseInt(s.substr(a, n), 10);
  let ms = Date.UTC(num(i, 4), num(i + 5, 2) - 1, num(i + 8, 2), num(i + 11, 2), num(i + 14, 2), num(i + 17, 2));
  let j = i + 19;
  if (s[j] === '.') {
    let k = j + 1;
    while (k < s.length && s.charCodeAt(k) >= 48 && s.charCodeAt(k) <= 57) k++;
    ms += parseFloat('0' + s.substring(j, k)) * 1000;
    j = k;
  }
  const sign = s[j];
  if (sign === '+' || sign === '-') {
    const off = (num(j + 1, 2) * 60 + num(j + 4, 2)) * 60000;
    ms -= sign === '+' ? off : -off;
  }
  return ms;
}

const subs = [];
let ready = 0;
let failed = 0;
let announced = false;

function announce() {
  if (!announced && ready + failed >= clients) {
    announced = true;
    process.send({ type: 'ready', ready, failed });
  }
}

// A WebSocket client of just what this bench needs (RFC 6455: the handshake, whole
// unfragmented frames from the server, pongs, masked text frames to it). Per message it
// costs about half of what the `ws` package does, whose streams and checks one process
// would otherwise pay for 1,000 clients; `ws` is kept for COMPRESS=1 (permessage-deflate).
class RawWebSocket extends EventEmitter {
  constructor(address, originHeader) {
    super();
    const u = new URL(address);
    this.head = null; // the handshake response so far
    this.pending = null; // the start of a frame not yet complete
    this.open = false;
    this.socket = net.connect(Number(u.port), u.hostname, () => {
      this.socket.setNoDelay(true);
      this.socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n`
        + `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n`
        + `Sec-WebSocket-Version: 13\r\nOrigin: ${originHeader}\r\n\r\n`);
    });
    this.socket.on('data', (chunk) => this.received(chunk));
    this.socket.on('close', () => this.emit('close'));
    this.socket.on('error', (err) => this.emit('error', err));
  }

  received(chunk) {
    let buf = chunk;
    if (!this.open) {
      buf = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) { this.head = buf; return; }
      if (!buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) { this.socket.destroy(); return; }
      this.open = true;
      this.head = null;
      this.emit('open');
      buf = buf.subarray(end + 4);
    }
    if (this.pending) { buf = Buffer.concat([this.pending, buf]); this.pending = null; }
    let i = 0;
    for (;;) {
      if (buf.length - i < 2) break;
      const b0 = buf[i];
      let size = buf[i + 1] & 0x7f;
      let start = i + 2;
      if (size === 126) {
        if (buf.length - i < 4) break;
        size = buf.readUInt16BE(i + 2);
        start = i + 4;
      } else if (size === 127) {
        if (buf.length - i < 10) break;
        size = Number(buf.readBigUInt64BE(i + 2));
        start = i + 10;
      }
      if (buf.length < start + size) break;
      const payload = buf.subarray(start, start + size);
      i = start + size;
      const opcode = b0 & 0x0f;
      if (!(b0 & 0x80) || opcode === 0) {
        this.emit('error', new Error('fragmented message (not expected from this server)'));
        this.socket.destroy();
        return;
      }
      if (opcode === 1 || opcode === 2) this.emit('message', payload);
      else if (opcode === 9) this.frame(0x0a, payload);
      else if (opcode === 8) this.socket.end();
    }
    if (i < buf.length) this.pending = buf.subarray(i);
  }

  frame(opcode, payload) {
    const mask = crypto.randomBytes(4);
    const header = payload.length < 126 ? Buffer.from([0x80 | opcode, 0x80 | payload.length])
      : Buffer.from([0x80 | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const masked = Buffer.alloc(payload.length);
    for (let k = 0; k < payload.length; k++) masked[k] = payload[k] ^ mask[k & 3];
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  send(text) {
    this.frame(0x01, Buffer.from(text));
  }

  terminate() {
    this.socket.destroy();
  }
}

function open(index) {
  const sub = { index, last: -1, gapped: false, snapshot: false };
  subs.push(sub);
  return new Promise((resolve) => {
    const ws = compress ? new WebSocket(url, { origin, perMessageDeflate: true }) : new RawWebSocket(url, origin);
    sub.ws = ws;
    ws.on('open', () => ws.send(JSON.stringify({ action: 'subscribe', instrument })));
    ws.on('message', (data) => {
      const t = nowMs();
      // Read the few fields needed straight from the bytes: decoding 1,000 copies of a
      // message of several KB would make this one process the bottleneck it measures.
      const head = data.toString('latin1', 0, 96);
      if (head.startsWith('{"type":"md.update"')) {
        const i = head.indexOf('"seq":');
        const seq = parseInt(head.substr(i + 6, 20), 10);
        if (counting) {
          if (sub.last >= 0) {
            if (seq > sub.last + 1) {
              stats.gaps += seq - sub.last - 1;
              stats.gap_events += 1;
              if (!sub.gapped) { sub.gapped = true; stats.clients_with_gaps += 1; }
            } else if (seq <= sub.last) {
              stats.out_of_order += 1;
            }
          }
          stats.messages += 1;
          stats.bytes += data.length;
          const k = data.lastIndexOf(TIME_KEY);
          if (k > 0) {
            const delay = t - parseIso(data.toString('latin1', k + TIME_KEY.length, k + TIME_KEY.length + 40), 0);
            hist[bucket(delay)] += 1;
            stats.timed += 1;
            if (delay > stats.max_ms) stats.max_ms = delay;
          }
          const tail = data.toString('latin1', Math.max(0, data.length - 64));
          const p = tail.indexOf(PUBLISHED_KEY);
          if (p >= 0) {
            const published = parseIso(tail, p + PUBLISHED_KEY.length);
            histPublished[bucket(t - published)] += 1;
            stats.published_timed += 1;
            const span = spans.get(seq);
            if (span === undefined) spans.set(seq, [published, t, t]);
            else span[2] = t;
          }
          const committed = commitAt.get(seq);
          if (committed !== undefined) {
            recordCommitDelay(t - commitTime(seq, committed));
          } else {
            let list = waiting.get(seq);
            if (list === undefined) waiting.set(seq, (list = []));
            list.push(t);
          }
          if (!stats.seen.has(seq)) { // once per message, whichever subscriber gets it first
            let trades = 0;
            let from = 0;
            while ((from = data.indexOf(AGGRESSOR_KEY, from) + 1) > 0) trades += 1;
            stats.seen.set(seq, trades);
          }
        }
        if (seq > sub.last) sub.last = seq;
        return;
      }
      const s = data.toString();
      if (!sub.snapshot && s.indexOf('md.snapshot') >= 0) {
        sub.snapshot = true;
        ready += 1;
        announce();
        resolve();
      } else if (s.indexOf('"error"') >= 0) {
        process.stderr.write(`client ${index}: ${s.slice(0, 200)}\n`);
      }
    });
    ws.on('close', () => {
      if (!sub.snapshot) { failed += 1; announce(); resolve(); } else if (stats) { stats.closed += 1; }
    });
    ws.on('error', (err) => {
      if (!sub.snapshot && failed < 5) process.stderr.write(`client ${index}: ${err.message}\n`);
    });
  });
}

function percentileMs(h, count, q) {
  const target = Math.ceil(count * q);
  let seen = 0;
  for (let b = 0; b < h.length; b++) {
    seen += h[b];
    if (seen >= target && target > 0) return (b + 1) * BUCKET_MS;
  }
  return null;
}

function quantile(values, q) {
  if (!values.length) return null;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.floor(q * values.length))];
}

function sparse(h) {
  const out = [];
  for (let b = 0; b < h.length; b++) if (h[b]) out.push(b, h[b]);
  return out;
}

// A worker's counts for the phase, as the first process merges them.
function counts() {
  const cpu = process.cpuUsage(stats.cpu);
  const { seen, started, cpu: _, ...counters } = stats;
  return {
    ...counters, seen: [...seen], spans: [...spans], hist: sparse(hist), histPublished: sparse(histPublished),
    histCommit: sparse(histCommit), commit_unmatched: [...waiting.values()].reduce((a, l) => a + l.length, 0),
    cpu_s: (cpu.user + cpu.system) / 1e6,
  };
}

function merge(name, elapsed, parts) {
  const sum = (key) => parts.reduce((a, p) => a + p[key], 0);
  const max = (key) => Math.max(...parts.map((p) => p[key]));
  const histogram = (key) => {
    const h = new Uint32Array(BUCKETS);
    for (const p of parts) for (let i = 0; i < p[key].length; i += 2) h[p[key][i]] += p[key][i + 1];
    return h;
  };
  const seen = new Map(parts.flatMap((p) => p.seen));
  const spansAll = new Map();
  for (const p of parts) {
    for (const [seq, [published, first, last]] of p.spans) {
      const span = spansAll.get(seq);
      if (span === undefined) spansAll.set(seq, [published, first, last]);
      else { span[1] = Math.min(span[1], first); span[2] = Math.max(span[2], last); }
    }
  }
  const [h, hp, hc] = [histogram('hist'), histogram('histPublished'), histogram('histCommit')];
  const [timed, publishedTimed, commitTimed, messages] = [sum('timed'), sum('published_timed'), sum('commit_timed'), sum('messages')];
  const values = [...spansAll.values()];
  return {
    name, seconds: elapsed, messages, timed,
    deliveries_per_s: messages / elapsed,
    p50_ms: percentileMs(h, timed, 0.5), p90_ms: percentileMs(h, timed, 0.9),
    p99_ms: percentileMs(h, timed, 0.99), p999_ms: percentileMs(h, timed, 0.999), max_ms: max('max_ms'),
    published_timed: publishedTimed,
    published_p50_ms: percentileMs(hp, publishedTimed, 0.5),
    published_p99_ms: percentileMs(hp, publishedTimed, 0.99),
    // Per message: from published_at to its first arrival, and from the first to the last arrival.
    first_arrival_p50_ms: quantile(values.map(([p, first]) => first - p), 0.5),
    first_arrival_max_ms: quantile(values.map(([p, first]) => first - p), 1),
    spread_p50_ms: quantile(values.map(([, first, last]) => last - first), 0.5),
    spread_max_ms: quantile(values.map(([, first, last]) => last - first), 1),
    commit_timed: commitTimed, commit_unmatched: sum('commit_unmatched'),
    commit_p50_ms: percentileMs(hc, commitTimed, 0.5),
    commit_p90_ms: percentileMs(hc, commitTimed, 0.9),
    commit_p99_ms: percentileMs(hc, commitTimed, 0.99),
    commit_p999_ms: percentileMs(hc, commitTimed, 0.999), commit_max_ms: max('commit_max_ms'),
    gaps: sum('gaps'), gap_events: sum('gap_events'), clients_with_gaps: sum('clients_with_gaps'),
    out_of_order: sum('out_of_order'), closed: sum('closed'),
    messages_per_s_one_client: seen.size / elapsed,
    trades_per_s_one_client: [...seen.values()].reduce((a, n) => a + n, 0) / elapsed,
    mean_message_bytes: messages ? sum('bytes') / messages : 0,
    client_cpu_cores: sum('cpu_s') / elapsed,
  };
}

async function worker() {
  reset('idle');
  const first = parseInt(process.env.CLIENT_FIRST, 10);
  const wave = 50;
  for (let i = 0; i < clients; i += wave) {
    const batch = [];
    for (let j = i; j < Math.min(clients, i + wave); j++) batch.push(open(first + j));
    await Promise.all(batch);
  }
  announce();
  process.on('message', ({ cmd, arg }) => {
    if (cmd === 'commit') {
      const [seq, ms] = arg.split(' ').map(Number);
      if (!counting) return;
      commitAt.set(seq, ms);
      const list = waiting.get(seq);
      if (list !== undefined) {
        const committed = commitTime(seq, ms);
        for (const t of list) recordCommitDelay(t - committed);
        waiting.delete(seq);
      }
    } else if (cmd === 'start') { reset(arg || 'phase'); counting = true; }
    else if (cmd === 'stop') { counting = false; process.send({ type: 'counts', counts: counts() }); }
    else if (cmd === 'quit') {
      for (const s of subs) { try { s.ws.terminate(); } catch (e) { /* gone */ } }
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

function main() {
  const workers = [];
  let hello = { ready: 0, failed: 0 };
  let helloes = 0;
  let pending = null; // the phase being stopped: counts received so far
  let phase = { name: 'idle', started: nowMs() };
  for (let w = 0; w < processes; w++) {
    const first = Math.floor((clients * w) / processes);
    const count = Math.floor((clients * (w + 1)) / processes) - first;
    const child = fork(__filename, [], {
      env: { ...process.env, CLIENT_FIRST: String(first), CLIENTS: String(count) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    child.on('message', (message) => {
      if (message.type === 'ready') {
        hello = { ready: hello.ready + message.ready, failed: hello.failed + message.failed };
        if (++helloes === processes) process.stdout.write(JSON.stringify(hello) + '\n');
      } else if (message.type === 'counts') {
        pending.push(message.counts);
        if (pending.length === processes) {
          process.stdout.write(JSON.stringify(merge(phase.name, (phase.stopped - phase.started) / 1000, pending)) + '\n');
          pending = null;
        }
      }
    });
    child.on('exit', (code) => { if (code) process.exit(code); });
    workers.push(child);
  }
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const text = line.trim();
    const space = text.indexOf(' ');
    const cmd = space < 0 ? text : text.slice(0, space);
    const arg = space < 0 ? '' : text.slice(space + 1);
    if (cmd === 'start') phase = { name: arg || 'phase', started: nowMs() };
    else if (cmd === 'stop') { phase.stopped = nowMs(); pending = []; }
    for (const child of workers) child.send({ cmd, arg });
    if (cmd === 'quit') setTimeout(() => process.exit(0), 200);
  });
  rl.on('close', () => { for (const child of workers) child.kill(); process.exit(0); });
}

if (isWorker) worker(); else main();
