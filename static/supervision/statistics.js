// The console's statistics charts, drawn by uPlot (static/vendor/uplot) from the figures the
// page embeds (the same the API answers). Figures arrive as exact decimal strings; they become
// numbers here only to be plotted, the tables and CSVs keep them exact.
(function () {
  "use strict";
  var figures = JSON.parse(document.getElementById("statistics-data").textContent);
  var text = JSON.parse(document.getElementById("statistics-text").textContent);
  var PALETTE = ["#0b6bcb", "#c62f2f", "#0a8a4a", "#a15c00", "#6b3fa0", "#00838f", "#d81b60", "#5b6675",
                 "#827717", "#3949ab", "#6d4c41", "#2e7d32"];
  var charts = [];

  function color(n) { return PALETTE[n % PALETTE.length]; }

  // 00:00 China time (UTC+8, no daylight saving) of "YYYY-MM-DD", in Unix seconds.
  function daySeconds(day) {
    var p = day.split("-").map(Number);
    return Date.UTC(p[0], p[1] - 1, p[2]) / 1000 - 8 * 3600;
  }

  function bucketSeconds(bucket) {
    return bucket.length === 10 ? daySeconds(bucket) : Date.parse(bucket) / 1000;
  }

  // Unix seconds → China-time "MM-DD", "HH:00" or "YYYY-MM-DD HH:00" (24-hour, as readers here expect).
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function chinaText(ts, form, hourly) {
    var d = new Date((ts + 8 * 3600) * 1000);
    var day = two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()), hour = two(d.getUTCHours()) + ":00";
    if (form === "full") return d.getUTCFullYear() + "-" + day + (hourly ? " " + hour : "");
    return form === "hour" && d.getUTCHours() !== 0 ? hour : day;
  }

  function number(value) { return value === null || value === undefined ? null : Number(value); }

  // Rows → uPlot data: the sorted times, and one series per key with `fill` where a key has no row.
  function pivot(rows, timeOf, keyOf, valueOf, fill) {
    var times = Array.from(new Set(rows.map(timeOf))).sort(function (a, b) { return a - b; });
    var at = new Map(times.map(function (t, i) { return [t, i]; }));
    var series = new Map();
    rows.forEach(function (row) {
      var key = keyOf(row);
      if (!series.has(key)) series.set(key, times.map(function () { return fill; }));
      series.get(key)[at.get(timeOf(row))] = valueOf(row);
    });
    var keys = Array.from(series.keys()).sort();
    return {labels: keys, data: [times].concat(keys.map(function (k) { return series.get(k); }))};
  }

  function classHub(row) { return row.compute_class + "·" + row.hub; }

  // The x axis spans the filter's days, so a range with a few figures still reads as a range.
  var range = figures.volume.filter;
  var xRange = [daySeconds(range.from), daySeconds(range.to) + 86400];

  function timeChart(element, title, unit, pivoted, options) {
    options = options || {};
    var many = pivoted.data[0].length > 60;
    return {
      element: element,
      opts: {
        title: title, height: 280,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Asia/Shanghai"); },
        scales: {x: {time: true, range: function () { return xRange; }},
                 y: options.percent ? {range: [0, 100]} : {}},
        series: [{label: text.time, value: function (u, ts) {
          return ts === null ? "–" : chinaText(ts, "full", options.hourly);
        }}]
          .concat(pivoted.labels.map(function (label, n) {
            return {label: label, stroke: color(n), width: 2, points: {show: !many, size: 7}, spanGaps: false};
          })),
        axes: [{values: function (u, splits, axis, space, incr) {
          return splits.map(function (ts) { return chinaText(ts, incr < 86400 ? "hour" : "day"); });
        }}, {label: unit, size: 70}],
      },
      data: pivoted.data,
    };
  }

  function providerChart(element, rows) {
    var names = rows.map(function (row) { return row.provider; });
    var xs = rows.map(function (_, n) { return n; });
    function bars(align, n, label, key) {  // two bars per provider: one left of its tick, one right
      return {label: label, stroke: color(n), fill: color(n) + "99", width: 1,
              paths: uPlot.paths.bars({size: [0.35, 60], align: align}), points: {show: false},
              // The legend shows the exact figure, not the plotted number.
              value: function (u, v, s, idx) {
                return idx === null || rows[idx] === undefined || rows[idx][key] === null ? "–" : rows[idx][key] + " %";
              }};
    }
    return {
      element: element,
      opts: {
        title: text.delivery_rate + " · " + text.dispute_rate, height: 320,
        scales: {x: {time: false, range: [-0.5, Math.max(rows.length - 0.5, 0.5)]}, y: {range: [0, 100]}},
        series: [
          {label: text.provider, value: function (u, i) { return i === null || names[i] === undefined ? "–" : names[i]; }},
          bars(-1, 0, text.delivery_rate, "delivery_rate"),
          bars(1, 1, text.dispute_rate, "dispute_rate"),
        ],
        axes: [
          {splits: function () { return xs; }, values: function (u, splits) {
            return splits.map(function (i) { return names[i] === undefined ? "" : names[i]; });
          }},
          {label: text.rate, size: 60},
        ],
      },
      data: [xs, rows.map(function (row) { return number(row.delivery_rate); }),
             rows.map(function (row) { return number(row.dispute_rate); })],
    };
  }

  function chartFor(element) {
    var name = element.dataset.chart;
    if (name === "volume" || name === "value") {
      var rows = figures.volume.rows;
      var pivoted = pivot(rows, function (r) { return bucketSeconds(r.bucket); }, classHub,
                          name === "volume" ? function (r) { return r.volume_scu_h; } : function (r) { return number(r.value); }, 0);
      return timeChart(element, text[name], name === "volume" ? "SCU·h" : "CNY", pivoted,
                       {hourly: range.interval === "hour"});
    }
    var day = function (r) { return daySeconds(r.day); };
    if (name === "price_index") {
      return timeChart(element, text.index, "CNY", pivot(figures.price_index.rows, day, classHub,
                       function (r) { return number(r.index); }, null));
    }
    if (name === "utilisation") {
      return timeChart(element, text.utilisation, "%", pivot(figures.utilisation.rows, day, classHub,
                       function (r) { return number(r.utilisation); }, null), {percent: true});
    }
    if (name === "green_share") {
      var totals = figures.green_share.totals;
      return timeChart(element, text.green, "%", {
        labels: [text.sold, text.delivered],
        data: [totals.map(day), totals.map(function (r) { return number(r.sold_green_share); }),
               totals.map(function (r) { return number(r.delivered_green_share); })],
      }, {percent: true});
    }
    if (name === "providers") {
      element.classList.add("bars");
      return providerChart(element, figures.providers.rows);
    }
    return null;
  }

  document.querySelectorAll("[data-chart]").forEach(function (element) {
    var chart = chartFor(element);
    if (!chart) return;
    chart.opts.width = element.clientWidth || 800;
    charts.push(new uPlot(chart.opts, chart.data, element));
  });

  window.addEventListener("resize", function () {
    charts.forEach(function (chart) {
      chart.setSize({width: chart.root.parentNode.clientWidth, height: chart.height});
    });
  });
})();
