// Metering upload: read the CSV here, send it in parts of a few hundred rows (each with the
// header and the number of its first row), and show the progress and every row's result as
// parts come back. Without this script the form posts the whole file and the page answers.
(function () {
  "use strict";
  const form = document.getElementById("metering-upload");
  if (!form || !window.fetch || !window.TextDecoder || !window.Blob || !Blob.prototype.arrayBuffer) return;

  const text = JSON.parse(document.getElementById("upload-text").textContent);
  const chunkUrl = form.dataset.chunkUrl;
  const chunkRows = Number(form.dataset.chunkRows) || 200;
  const maxRows = Number(form.dataset.maxRows) || 10000;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const $ = (id) => document.getElementById(id);
  const errorBox = $("upload-error"), results = $("upload-results"), table = $("metering-results");
  const bar = $("upload-bar"), progressText = $("upload-progress-text");
  const counts = { reported: 0, refused: 0 };

  function say(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name])).replace(/%%/g, "%");
  }

  // Splits CSV text into records as Python's csv module reads them: a line break inside
  // quotes belongs to the field. A record is blank when no field holds anything but spaces
  // (the server skips those and numbers only the others, so the parts must do the same).
  function records(csv) {
    const out = [];
    let start = 0, quoted = false, fieldStart = true, filled = false, i = 0;
    const end = (stop, next) => {
      out.push({ raw: csv.slice(start, stop), blank: !filled });
      start = next; fieldStart = true; filled = false;
    };
    while (i < csv.length) {
      const ch = csv[i];
      if (quoted) {
        if (ch === '"' && csv[i + 1] === '"') { filled = true; i += 2; continue; }
        if (ch === '"') quoted = false; else if (/\S/.test(ch)) filled = true;
      } else if (ch === '"' && fieldStart) {
        quoted = true; fieldStart = false;
      } else if (ch === ",") {
        fieldStart = true;
      } else if (ch === "\n" || ch === "\r") {
        const next = ch === "\r" && csv[i + 1] === "\n" ? i + 2 : i + 1;
        end(i, next); i = next; continue;
      } else {
        fieldStart = false;
        if (/\S/.test(ch)) filled = true;
      }
      i += 1;
    }
    if (start < csv.length) end(csv.length, csv.length);
    return out;
  }

  function headerOk(record) {
    const names = record.raw.split(",").map((s) => s.trim().replace(/^"(.*)"$/, "$1").trim().toLowerCase());
    return names[0] === "allocation_id" && names[1] === "device_hours";
  }

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function progress(done, total) {
    bar.max = total; bar.value = done;
    progressText.textContent = say(text.progress, { done, total, pct: Math.floor((done * 100) / total) });
  }

  function show(rows) {
    const body = table.tBodies[0], fragment = document.createDocumentFragment();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = r.ok ? "ok" : "refused";
      for (const [value, cls] of [[r.row, "num"], [r.allocation_id], [r.ok ? text.reported : r.code], [r.ok ? "" : r.detail]]) {
        const td = document.createElement("td");
        td.textContent = value === undefined || value === null ? "" : String(value);
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      fragment.appendChild(tr);
      counts[r.ok ? "reported" : "refused"] += 1;
    }
    body.appendChild(fragment);
    $("count-reported").textContent = counts.reported;
    $("count-refused").textContent = counts.refused;
  }

  async function send(header, part, firstRow) {
    const body = JSON.stringify({ text: header + "\n" + part.map((r) => r.raw).join("\n") + "\n", first_row: firstRow });
    let response;
    try {
      response = await fetch(chunkUrl, {
        method: "POST", credentials: "same-origin", body,
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      });
    } catch (e) {
      throw new Error(text.network);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* an HTML error page */ }
    if (!response.ok || !data || !Array.isArray(data.results)) {
      throw new Error(data && data.detail ? data.detail : say(text.http, { status: response.status }));
    }
    return data.results;
  }

  async function upload(file) {
    let csv;
    try {
      // Strict, as the server reads a posted file: a GBK or UTF-16 export is refused, not garbled.
      csv = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
    } catch (e) {
      return fail(text.not_utf8);
    }
    if (csv.indexOf("\u0000") >= 0) return fail(text.binary);
    const all = records(csv);
    if (!all.length || !headerOk(all[0])) return fail(text.bad_header);
    const rows = all.slice(1).filter((r) => !r.blank);
    if (!rows.length) return fail(text.empty);
    if (rows.length > maxRows) return fail(say(text.too_many, { n: rows.length.toLocaleString("en"), max: maxRows.toLocaleString("en") }));
    results.hidden = false;
    $("upload-progress").hidden = false;
    progress(0, rows.length);
    for (let k = 0; k < rows.length; k += chunkRows) {
      const part = rows.slice(k, k + chunkRows);
      try {
        show(await send(all[0].raw, part, k + 1));
      } catch (e) {
        return fail(say(text.stopped, { row: k + 1, detail: e.message }));
      }
      progress(k + part.length, rows.length);
    }
    progressText.textContent += " · " + text.done;
  }

  $("only-refused").addEventListener("change", (e) => table.classList.toggle("only-refused", e.target.checked));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const button = form.querySelector("button[type=submit]");
    errorBox.hidden = true;
    table.tBodies[0].replaceChildren();
    counts.reported = counts.refused = 0;
    $("count-reported").textContent = $("count-refused").textContent = "0";
    $("only-refused").checked = false;
    table.classList.remove("only-refused");
    if (!file) return fail(text.choose);
    button.disabled = true;
    try {
      await upload(file);
    } finally {
      button.disabled = false;
    }
  });
})();
