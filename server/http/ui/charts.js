// vicreg web UI: a compact SVG line-chart renderer (no dependencies).
// The server already downsamples every series to <= max_points (min/max per bucket), so a chart
// draws at most a few thousand points per line and plain SVG paths stay responsive.
// Every text goes through textContent / createTextNode: nothing from the data is parsed as HTML.
//
//   VicregCharts.line(container, {
//     title: "loss", x: [steps...], xLabel: "step",
//     series: [{key: "loss", label: "loss", y: [values or null...], color: "#2563eb", dash: false}],
//     thresholds: [{y: 0.1, color: "amber", label: "0.1"}]})
// Each series path carries data-series=<key> and data-points=<number of points drawn>.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 640, H = 230, ML = 58, MR = 14, MT = 10, MB = 28;
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  var THRESHOLD_COLORS = { amber: "#d97706", red: "#dc2626" };

  function svg(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function div(cls, text) {
    var e = document.createElement("div");
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function finite(v) { return typeof v === "number" && isFinite(v); }

  // Short human number: 12345 -> "12,345", 0.000123 -> "1.23e-4", 0.5 -> "0.5".
  function fmt(v) {
    if (!finite(v)) return "–";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e6) return v.toExponential(2).replace("e+", "e");
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a >= 1) return String(Number(v.toPrecision(4)));
    if (a >= 1e-3) return String(Number(v.toPrecision(3)));
    return v.toExponential(2).replace("e-0", "e-");
  }

  // "Nice" ticks covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = (n * step) / span;
    if (err <= 0.15) step *= 10; else if (err <= 0.35) step *= 5; else if (err <= 0.75) step *= 2;
    var out = [], t = Math.ceil(lo / step) * step;
    for (; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }

  function nearest(xs, v) {  // index of the x closest to v (xs ascending)
    var lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (xs[mid] < v) lo = mid; else hi = mid; }
    return Math.abs(xs[lo] - v) <= Math.abs(xs[hi] - v) ? lo : hi;
  }

  function line(container, spec) {
    while (container.firstChild) container.removeChild(container.firstChild);
    container.classList.add("chart");
    container.appendChild(div("title", spec.title));
    var xs = spec.x || [];
    var series = (spec.series || []).filter(function (s) { return s.y && s.y.some(finite); });
    var legend = div("legend");
    series.forEach(function (s, i) {
      s.color = s.color || PALETTE[i % PALETTE.length];
      var item = document.createElement("span"), sw = document.createElement("i");
      sw.style.background = s.color;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(s.label || s.key));
      legend.appendChild(item);
    });
    (spec.thresholds || []).forEach(function (t) {
      var item = document.createElement("span"), sw = document.createElement("i");
      sw.style.background = THRESHOLD_COLORS[t.color] || t.color;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(t.label));
      legend.appendChild(item);
    });
    container.appendChild(legend);
    if (!series.length || !xs.length) {
      container.appendChild(div("empty", spec.empty || "no data yet"));
      return;
    }
    var x0 = xs[0], x1 = xs[xs.length - 1];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var y0 = Infinity, y1 = -Infinity;
    series.forEach(function (s) {
      s.y.forEach(function (v) { if (finite(v)) { if (v < y0) y0 = v; if (v > y1) y1 = v; } });
    });
    var shown = (spec.thresholds || []).filter(function (t) {
      var span = Math.max(y1 - y0, Math.abs(y1) * 0.05, 1e-12);
      return t.y >= y0 - span && t.y <= y1 + span;  // a limit the data comes close to
    });
    shown.forEach(function (t) { y0 = Math.min(y0, t.y); y1 = Math.max(y1, t.y); });
    if (y1 === y0) {
      if (y0 === 0) y1 = 1;  // e.g. collapsed_dims at 0 all run long
      else { var d = Math.abs(y0) * 0.1; y0 -= d; y1 += d; }
    }
    var pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    if (spec.zeroBased && y0 > 0 && y0 < (y1 - y0)) y0 = 0;
    var px = function (x) { return ML + ((x - x0) / (x1 - x0)) * (W - ML - MR); };
    var py = function (y) { return MT + (1 - (y - y0) / (y1 - y0)) * (H - MT - MB); };

    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "data-x-count": xs.length });
    root.setAttribute("aria-label", spec.title);
    ticks(y0, y1, 5).forEach(function (t) {
      if (t < y0 || t > y1) return;
      root.appendChild(svg("line", { "class": "grid", x1: ML, x2: W - MR, y1: py(t), y2: py(t) }));
      var lab = svg("text", { x: ML - 6, y: py(t) + 4, "text-anchor": "end" });
      lab.textContent = fmt(t);
      root.appendChild(lab);
    });
    ticks(x0, x1, 6).forEach(function (t) {
      if (t < x0 || t > x1) return;
      root.appendChild(svg("line", { "class": "grid", x1: px(t), x2: px(t), y1: MT, y2: H - MB }));
      var near = px(t) > W - MR - 24 ? "end" : px(t) < ML + 24 ? "start" : "middle";  // keep labels inside
      var lab = svg("text", { x: px(t), y: H - MB + 16, "text-anchor": near });
      lab.textContent = fmt(t);
      root.appendChild(lab);
    });
    root.appendChild(svg("line", { "class": "axis", x1: ML, x2: W - MR, y1: H - MB, y2: H - MB }));
    if (spec.xLabel) {
      var xl = svg("text", { x: ML, y: H - 2, "text-anchor": "start" });
      xl.textContent = spec.xLabel;
      root.appendChild(xl);
    }
    shown.forEach(function (t) {
      root.appendChild(svg("line", { x1: ML, x2: W - MR, y1: py(t.y), y2: py(t.y), stroke: THRESHOLD_COLORS[t.color] || t.color,
        "stroke-dasharray": "5 4", "stroke-width": 1.2, "data-threshold": t.y }));
    });
    series.forEach(function (s) {
      var d = [], n = 0, pen = false;
      for (var i = 0; i < xs.length && i < s.y.length; i++) {
        var v = s.y[i];
        if (!finite(v) || !finite(xs[i])) { pen = false; continue; }
        d.push((pen ? "L" : "M") + px(xs[i]).toFixed(1) + " " + py(v).toFixed(1));
        pen = true; n++;
      }
      var attrs = { "class": "series", d: d.join(""), stroke: s.color, "data-series": s.key, "data-points": n };
      if (s.dash) attrs["stroke-dasharray"] = "6 4";
      if (n === 1) { attrs["stroke-width"] = 4; attrs["stroke-linecap"] = "round"; attrs.d += "h0.01"; }
      root.appendChild(svg("path", attrs));
      if (spec.markers) {
        for (var j = 0; j < xs.length; j++) {
          if (finite(s.y[j])) root.appendChild(svg("circle", { cx: px(xs[j]), cy: py(s.y[j]), r: 3, fill: s.color }));
        }
      }
    });
    var hover = svg("line", { "class": "hover", x1: 0, x2: 0, y1: MT, y2: H - MB, visibility: "hidden" });
    root.appendChild(hover);
    container.appendChild(root);
    var tip = div("tip");
    container.appendChild(tip);

    function show(ev) {
      var r = root.getBoundingClientRect();
      if (!r.width) return;
      var sx = ((ev.clientX - r.left) / r.width) * W;
      if (sx < ML || sx > W - MR) { hide(); return; }
      var i = nearest(xs, x0 + ((sx - ML) / (W - ML - MR)) * (x1 - x0));
      hover.setAttribute("x1", px(xs[i])); hover.setAttribute("x2", px(xs[i]));
      hover.setAttribute("visibility", "visible");
      while (tip.firstChild) tip.removeChild(tip.firstChild);
      tip.appendChild(div("", (spec.xLabel || "x") + " " + fmt(xs[i])));
      series.forEach(function (s) { tip.appendChild(div("", (s.label || s.key) + ": " + fmt(s.y[i]))); });
      tip.style.display = "block";
      var left = ev.clientX - container.getBoundingClientRect().left + 12;
      tip.style.left = Math.min(left, container.clientWidth - tip.offsetWidth - 4) + "px";
      tip.style.top = "2.2em";
    }
    function hide() { hover.setAttribute("visibility", "hidden"); tip.style.display = "none"; }
    root.addEventListener("pointermove", show);
    root.addEventListener("pointerleave", hide);
  }

  window.VicregCharts = { line: line, fmt: fmt };
})();
