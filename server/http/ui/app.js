// vicreg web UI: the jobs page (/), the job page (/jobs/<id>), the login page (/login) and the
// self-contained report (the same job page fed by data embedded in the file instead of the API).
// Uses only the JSON API under /api/v1 (docs/OPERATIONS.md "Web UI and HTTP API"). Read-only.
// Security: every value from the server is inserted with textContent / createTextNode or as an
// attribute value; innerHTML is never used.
(function () {
  "use strict";
  var C = window.VicregCharts;
  var fmt = C.fmt;
  var app = document.getElementById("app");
  var embedded = document.getElementById("vicreg-report-data");
  var REPORT = embedded ? JSON.parse(embedded.textContent) : null;
  var ACTIVE = { queued: 1, starting: 1, running: 1, restarting: 1 };
  var timers = [];

  // ---- DOM helpers ------------------------------------------------------------------------------
  // h("td", {class: "num", "data-label": "loss"}, "1.23", childNode, ...): strings become text nodes.
  function h(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === undefined || attrs[k] === null) continue;
        if (k === "class") e.className = attrs[k];
        else if (k === "text") e.textContent = attrs[k];
        else if (k === "onclick" || k === "onchange") e[k] = attrs[k];
        else e.setAttribute(k, String(attrs[k]));
      }
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(parent, x); }); return; }
    parent.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function safeHref(path) { return path.charAt(0) === "/" && path.charAt(1) !== "/" ? path : "/"; }

  function pct(v) { return typeof v === "number" && isFinite(v) ? (v * 100).toFixed(2) + "%" : "–"; }
  function signedPts(v) {
    if (typeof v !== "number" || !isFinite(v)) return "–";
    return (v >= 0 ? "+" : "") + (v * 100).toFixed(2);
  }
  function duration(s) {
    if (typeof s !== "number" || !isFinite(s) || s <= 0) return "–";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    var hrs = Math.floor(s / 3600);
    return (hrs >= 48 ? Math.floor(hrs / 24) + "d" + (hrs % 24) + "h" : hrs + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m");
  }
  function when(t) {
    if (!t) return "–";
    var d = new Date(t * 1000);
    function p(n) { return String(n).padStart(2, "0"); }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function clock(t) { return t ? when(t).slice(11) : "–"; }

  // Colour classes of the seed's collapse warnings (thresholds come from the API).
  function stdClass(v, th) {
    if (typeof v !== "number") return "";
    return v < th.std_min_red ? "warn-red" : v < th.std_min_amber ? "warn-amber" : "";
  }
  function simClass(v, th) { return typeof v === "number" && v > th.pairwise_sim_red ? "warn-red" : ""; }

  // ---- data access: the API, or the report's embedded data ----------------------------------------
  function api(path) {
    return fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401) {
        location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
        throw new Error("authentication required");
      }
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
        return body;
      });
    });
  }
  function every(ms, fn) {
    var busy = false;
    function tick() {
      if (document.hidden || busy) return;
      busy = true;
      Promise.resolve().then(fn).catch(function () {}).then(function () { busy = false; });
    }
    tick();
    timers.push(setInterval(tick, ms));
  }
  function stopTimers() { timers.forEach(clearInterval); timers = []; }

  function header(extra) {
    var nav = h("nav", null, h("a", { href: "/" }, "Jobs"));
    if (!REPORT) {
      nav.appendChild(h("a", { href: "/metrics" }, "/metrics"));
      nav.appendChild(h("a", { href: "/sd" }, "/sd"));
    }
    return h("header", { "class": "top" }, h("a", { "class": "brand", href: REPORT ? "#" : "/" }, "vicreg"), nav,
             h("span", { "class": "right" }, extra || ""));
  }

  function stateBadge(state) { return h("span", { "class": "state " + state, "data-state": state }, state); }

  function progressCell(p, state) {
    var frac = p.total_steps > 0 ? Math.min(1, p.step / p.total_steps) : 0;
    var fill = h("span");
    fill.style.width = (frac * 100).toFixed(1) + "%";
    var text = p.total_steps > 0 ? p.step.toLocaleString("en-US") + " / " + p.total_steps.toLocaleString("en-US") : (p.step ? String(p.step) : "–");
    if (p.total_steps > 0) text += " (" + (frac * 100).toFixed(0) + "%)";
    if (ACTIVE[state] && p.eta_seconds > 0) text += " · ETA " + duration(p.eta_seconds);
    return h("div", null, h("div", { "class": "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": p.total_steps || 0, "aria-valuenow": p.step }, fill),
             h("div", { "class": "progress-text" }, text));
  }

  // ---- jobs page --------------------------------------------------------------------------------
  function jobsPage() {
    document.title = "vicreg · jobs";
    var status = h("span", { id: "refresh-status" });
    clear(app).appendChild(header(status));
    var main = h("main", null, h("h1", null, "Jobs"));
    var errBox = h("div");
    var body = h("tbody", { id: "jobs-body" });
    var table = h("table", { "class": "jobs", id: "jobs" },
      h("thead", null, h("tr", null, h("th", null, "Job"), h("th", null, "State"), h("th", null, "Progress"),
        h("th", { "class": "num" }, "Loss"), h("th", { "class": "num" }, "min std"), h("th", { "class": "num" }, "pairwise sim"),
        h("th", { "class": "num" }, "Attempts / restarts"), h("th", null, "Submitted"))), body);
    var empty = h("p", { "class": "muted", id: "jobs-empty" });
    main.appendChild(errBox);
    main.appendChild(h("div", { "class": "tablewrap" }, table));
    main.appendChild(empty);
    app.appendChild(main);
    every(2000, function () {
      return api("/api/v1/jobs?limit=200").then(function (d) {
        clear(errBox);
        clear(body);
        var th = d.thresholds;
        d.jobs.forEach(function (j) {
          var lt = j.latest || {};
          var name = h("td", { "data-label": "job" },
            h("a", { "class": "jobname", href: "/jobs/" + encodeURIComponent(j.id) }, j.name || j.id),
            h("div", { "class": "muted small mono" }, j.id),
            j.pending_reason && j.state === "queued" ? h("div", { "class": "reason" }, j.pending_reason) : null,
            j.last_error && j.state === "failed" ? h("div", { "class": "reason" }, j.last_error.split("\n")[0]) : null);
          var tr = h("tr", { "data-job": j.id },
            name,
            h("td", { "data-label": "state" }, stateBadge(j.state)),
            h("td", { "data-label": "progress" }, progressCell(j.progress, j.state)),
            h("td", { "class": "num", "data-label": "loss", "data-value": lt.loss }, fmt(lt.loss !== undefined && lt.loss !== null ? lt.loss : (j.progress.step ? j.progress.loss : null))),
            h("td", { "class": "num " + stdClass(lt.std_min, th), "data-label": "min std", "data-value": lt.std_min }, fmt(lt.std_min)),
            h("td", { "class": "num " + simClass(lt.pairwise_sim, th), "data-label": "pairwise sim", "data-value": lt.pairwise_sim }, fmt(lt.pairwise_sim)),
            h("td", { "class": "num", "data-label": "attempts / restarts" }, j.attempt + " / " + j.restarts),
            h("td", { "data-label": "submitted", title: when(j.created_unix) }, when(j.created_unix)));
          body.appendChild(tr);
        });
        empty.textContent = d.jobs.length ? (d.more ? "showing the newest " + d.jobs.length + " of " + d.total + " jobs" : "") : "No jobs yet: submit one with vicregctl submit FILE.";
        status.textContent = "updated " + clock(d.now);
      }).catch(function (e) { clear(errBox).appendChild(h("div", { "class": "error-box" }, String(e.message || e))); throw e; });
    });
  }

  // ---- job page ---------------------------------------------------------------------------------
  var CHARTS = [
    { title: "loss", keys: [["loss", "total loss"]] },
    { title: "loss components (unweighted)", keys: [["invariance", "invariance"], ["variance", "variance"], ["covariance", "covariance"]] },
    { title: "std of embeddings (per dim)", keys: [["std_min", "min"], ["std_mean", "mean"], ["std_max", "max"]], std: true },
    { title: "pairwise cosine similarity", keys: [["pairwise_sim", "pairwise sim"]], sim: true },
    { title: "covariance off-diagonal (mean squared)", keys: [["cov_offdiag_sq", "cov off-diag²"]] },
    { title: "RankMe (effective rank)", keys: [["rankme", "RankMe"]] },
    { title: "collapsed dimensions (fraction with std < 0.01)", keys: [["collapsed_dims", "collapsed"]], zeroBased: true },
    { title: "learning rate", keys: [["lr", "lr"]], zeroBased: true },
    { title: "throughput (images/s, all ranks)", keys: [["images_per_s", "images/s"]], zeroBased: true },
    { title: "data wait and step time (s)", keys: [["data_wait_s", "data wait"], ["step_s", "step"]], zeroBased: true },
    { title: "gradient norm (before clipping)", keys: [["grad_norm", "grad norm"]] },
    { title: "online probes (top-1)", keys: [["online_linear_top1", "linear"], ["online_knn_top1", "kNN"]], optional: true }
  ];

  function summaryCard(k, v, id) {
    return h("div", { "class": "card", id: id }, h("div", { "class": "k" }, k), h("div", { "class": "v" }, v));
  }

  function renderSummary(box, j, th) {
    clear(box);
    var p = j.progress, lt = j.latest || {};
    box.appendChild(summaryCard("state", [stateBadge(j.state), j.pending_reason && j.state === "queued" ? h("div", { "class": "reason" }, j.pending_reason) : null], "sum-state"));
    box.appendChild(summaryCard("progress", progressCell(p, j.state), "sum-progress"));
    box.appendChild(summaryCard("epoch", p.num_epochs ? p.epoch + " / " + p.num_epochs : (p.epoch || "–")));
    box.appendChild(summaryCard("loss", fmt(lt.loss !== undefined && lt.loss !== null ? lt.loss : (p.step ? p.loss : null)), "sum-loss"));
    box.appendChild(summaryCard("min std", h("span", { "class": stdClass(lt.std_min, th) }, fmt(lt.std_min))));
    box.appendChild(summaryCard("pairwise sim", h("span", { "class": simClass(lt.pairwise_sim, th) }, fmt(lt.pairwise_sim))));
    box.appendChild(summaryCard("images/s", fmt(p.images_per_s)));
    box.appendChild(summaryCard("attempts / restarts", j.attempt + " / " + j.restarts + " (max " + j.max_restarts + ")"));
    box.appendChild(summaryCard("ranks", j.ranks + " × " + j.device + (j.placement ? " (" + j.placement + ")" : "")));
    box.appendChild(summaryCard("submitted", when(j.created_unix)));
    box.appendChild(summaryCard("started", when(j.started_unix)));
    box.appendChild(summaryCard("finished", when(j.finished_unix)));
  }

  function renderCharts(box, m, th) {
    clear(box);
    var note = m.downsampled ? m.in_range.toLocaleString("en-US") + " logged steps, shown as min/max of " + m.buckets + " buckets" : m.in_range + " logged steps";
    box.setAttribute("data-rows", m.rows);
    box.setAttribute("data-in-range", m.in_range);
    box.setAttribute("data-points", m.x.length);
    CHARTS.forEach(function (c) {
      var series = c.keys.map(function (k) { return { key: k[0], label: k[1], y: m.series[k[0]] || [] }; });
      if (c.optional && !series.some(function (s) { return s.y.some(function (v) { return v !== null; }); })) return;
      var thresholds = [];
      if (c.std) thresholds = [{ y: th.std_min_amber, color: "amber", label: "min std < " + th.std_min_amber + ": amber" }, { y: th.std_min_red, color: "red", label: "< " + th.std_min_red + ": red" }];
      if (c.sim) thresholds = [{ y: th.pairwise_sim_red, color: "red", label: "> " + th.pairwise_sim_red + ": red" }];
      var el = h("div", { "data-chart": c.keys[0][0] });
      box.appendChild(el);
      C.line(el, { title: c.title, x: m.x, xLabel: "step", series: series, thresholds: thresholds, zeroBased: c.zeroBased });
    });
    return note;
  }

  function renderEvals(tableBox, chartBox, ev) {
    clear(tableBox);
    clear(chartBox);
    if (!ev.tasks.length) {
      tableBox.appendChild(h("p", { "class": "muted" }, "No scheduled evaluations (the job file's eval section names the epochs)."));
      return;
    }
    var body = h("tbody");
    ev.table.forEach(function (r) {
      body.appendChild(h("tr", { "data-epoch": r.epoch, "data-dataset": r.dataset, "data-probe": r.probe },
        h("td", { "class": "num" }, String(r.epoch)), h("td", null, r.dataset), h("td", null, r.probe === "knn" ? "kNN" : r.probe),
        h("td", { "class": "num", "data-model": "vicreg", "data-value": r.vicreg_top1 }, pct(r.vicreg_top1)),
        h("td", { "class": "num", "data-model": "random_init", "data-value": r.random_init_top1 }, pct(r.random_init_top1)),
        h("td", { "class": "num", "data-model": "raw_pixels", "data-value": r.raw_pixels_top1 }, pct(r.raw_pixels_top1)),
        h("td", { "class": "num " + (r.delta_random_init >= 0 ? "delta-pos" : "delta-neg"), "data-value": r.delta_random_init }, signedPts(r.delta_random_init)),
        h("td", { "class": "num " + (r.delta_raw_pixels >= 0 ? "delta-pos" : "delta-neg"), "data-value": r.delta_raw_pixels }, signedPts(r.delta_raw_pixels)),
        h("td", { "class": "num", "data-model": "vicreg-top5", "data-value": r.vicreg_top5 }, pct(r.vicreg_top5))));
    });
    tableBox.appendChild(h("div", { "class": "tablewrap" }, h("table", { id: "eval-table" },
      h("thead", null, h("tr", null, h("th", { "class": "num" }, "epoch"), h("th", null, "dataset"), h("th", null, "probe"),
        h("th", { "class": "num" }, "learned top-1"), h("th", { "class": "num" }, "random-init"), h("th", { "class": "num" }, "raw pixels"),
        h("th", { "class": "num" }, "Δ vs random (pts)"), h("th", { "class": "num" }, "Δ vs pixels (pts)"), h("th", { "class": "num" }, "learned top-5"))),
      body)));
    var pending = ev.tasks.filter(function (t) { return t.state !== "succeeded"; });
    if (pending.length) {
      tableBox.appendChild(h("ul", { "class": "small" }, pending.map(function (t) {
        return h("li", null, "epoch " + t.epoch + " " + t.dataset + ": " + t.state + (t.attempts ? " (attempt " + t.attempts + ")" : "") + (t.error ? ": " + t.error : ""));
      })));
    }
    // Probe accuracy by epoch: learned encoder per probe, with the references as dashed lines.
    var epochs = [];
    ev.table.forEach(function (r) { if (epochs.indexOf(r.epoch) < 0) epochs.push(r.epoch); });
    epochs.sort(function (a, b) { return a - b; });
    var series = [];
    var keys = [];
    ev.table.forEach(function (r) { var k = r.dataset + "/" + r.probe; if (keys.indexOf(k) < 0) keys.push(k); });
    keys.forEach(function (k, i) {
      var rows = ev.table.filter(function (r) { return r.dataset + "/" + r.probe === k; });
      function col(name) { return epochs.map(function (e) { var r = rows.filter(function (x) { return x.epoch === e; })[0]; return r && typeof r[name] === "number" ? r[name] * 100 : null; }); }
      var label = k.replace("/knn", " kNN").replace("/linear", " linear");
      series.push({ key: k + "/vicreg", label: label + " (learned)", y: col("vicreg_top1") });
      series.push({ key: k + "/random_init", label: label + " (random-init)", y: col("random_init_top1"), dash: true });
      series.push({ key: k + "/raw_pixels", label: label + " (raw pixels)", y: col("raw_pixels_top1"), dash: true });
    });
    var palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];
    series.forEach(function (s, i) { s.color = palette[Math.floor(i / 3) % palette.length]; if (i % 3 === 2) s.color = "#6b7280"; });
    var el = h("div", { "data-chart": "eval" });
    chartBox.appendChild(el);
    C.line(el, { title: "probe top-1 (%) by epoch", x: epochs, xLabel: "epoch", series: series, markers: true, empty: "no finished evaluation yet" });
  }

  function renderEvents(list, ev) {
    clear(list);
    ev.events.forEach(function (e) {
      list.appendChild(h("li", { "data-kind": e.kind }, h("span", { "class": "t", title: when(e.time_unix) }, when(e.time_unix)),
        h("span", { "class": "kind " + e.kind }, e.kind), h("span", { "class": "msg" }, e.text)));
    });
    if (!ev.events.length) list.appendChild(h("li", { "class": "muted" }, "no events"));
  }

  function jobPage(id) {
    document.title = "vicreg · " + id;
    var status = h("span", { id: "refresh-status" });
    clear(app).appendChild(header(status));
    var main = h("main");
    app.appendChild(main);
    var title = h("h1", { id: "job-title" }, id);
    var errBox = h("div");
    var lastError = h("div", { id: "last-error" });
    var summary = h("div", { "class": "summary", id: "summary" });
    var links = h("div", { "class": "links", id: "links" });
    var chartNote = h("p", { "class": "muted small", id: "chart-note" });
    var charts = h("div", { "class": "charts", id: "charts" });
    var evalTable = h("div", { id: "evals" });
    var evalChart = h("div", { "class": "charts", id: "eval-chart" });
    var events = h("ul", { "class": "timeline", id: "events" });
    var logSel = h("select", { id: "log-source" });
    var logPre = h("pre", { "class": "log", id: "log" });
    var spec = h("pre", { "class": "spec", id: "spec" });
    main.appendChild(title);
    main.appendChild(errBox);
    main.appendChild(lastError);
    main.appendChild(summary);
    main.appendChild(links);
    main.appendChild(h("h2", null, "Training curves"));
    main.appendChild(chartNote);
    main.appendChild(charts);
    main.appendChild(h("h2", null, "Evaluation (linear probe and kNN per checkpoint epoch)"));
    main.appendChild(evalTable);
    main.appendChild(evalChart);
    main.appendChild(h("h2", null, "Events"));
    main.appendChild(events);
    main.appendChild(h("h2", null, "Logs"));
    main.appendChild(h("div", { "class": "controls" }, h("label", null, "source ", logSel), h("span", { "class": "muted small", id: "log-info" })));
    main.appendChild(logPre);
    main.appendChild(h("h2", null, "Resolved job file"));
    main.appendChild(spec);

    var th = null, state = null, maxPoints = new URLSearchParams(location.search).get("max_points") || "";
    function showJob(j, info) {
      th = info.thresholds || th;
      state = j.state;
      title.textContent = (j.name || j.id) + " · " + j.id;
      document.title = "vicreg · " + (j.name || j.id);
      renderSummary(summary, j, th);
      clear(lastError);
      if (j.last_error) lastError.appendChild(h("div", { "class": "error-box" }, j.last_error));
      clear(links);
      if (!REPORT) {
        links.appendChild(h("a", { href: "/api/v1/jobs/" + encodeURIComponent(j.id) + "/report", download: j.id + "-report.html" }, "download report (HTML)"));
        links.appendChild(h("a", { href: "/metrics" }, "coordinator /metrics"));
        links.appendChild(h("a", { href: "/sd" }, "Prometheus service discovery /sd"));
        (j.endpoints || []).forEach(function (e) {
          links.appendChild(h("a", { href: "http://" + e.metrics + "/metrics", rel: "noreferrer" }, "rank " + e.rank + " /metrics (" + e.metrics + ")"));
        });
      }
      var sources = (j.log_sources || []);
      if (logSel.options.length !== sources.length) {
        var cur = logSel.value;
        clear(logSel);
        sources.forEach(function (s) { logSel.appendChild(h("option", { value: s }, s)); });
        if (sources.indexOf(cur) >= 0) logSel.value = cur;
      }
    }
    function showLog(l) {
      logPre.textContent = l.text || "(empty)";
      document.getElementById("log-info").textContent = l.source ? l.source + (l.truncated ? " (last " + l.lines + " lines)" : "") : "no log yet";
      logPre.scrollTop = logPre.scrollHeight;
    }

    if (REPORT) {
      var d = REPORT;
      showJob(d.job, d.info);
      chartNote.textContent = renderCharts(charts, d.metrics, th);
      renderEvals(evalTable, evalChart, d.evals);
      renderEvents(events, d.events);
      showLog(d.logs);
      logSel.disabled = true;
      spec.textContent = d.spec.yaml;
      status.textContent = "report generated " + when(d.generated_unix);
      main.appendChild(h("footer", { "class": "report" }, "vicreg report · " + d.job.id + " · generated " + when(d.generated_unix) + " by vicreg " + (d.info.version || "") +
        " · self-contained file: no network access"));
      return;
    }

    var base = "/api/v1/jobs/" + encodeURIComponent(id);
    var info = null;
    api("/api/v1/info").then(function (i) {
      info = i;
      var lastMetrics = 0, lastSlow = 0, lastLog = 0, finalDone = false;
      every(2000, function () {
        return api(base).then(function (j) {
          clear(errBox);
          showJob(j, info);
          var now = Date.now(), active = !!ACTIVE[j.state], jobs = [];
          if (finalDone && !active) { status.textContent = "job " + j.state; return; }
          if (!lastMetrics || (active && now - lastMetrics > 5000) || !active) {
            lastMetrics = now;
            jobs.push(api(base + "/metrics" + (maxPoints ? "?max_points=" + encodeURIComponent(maxPoints) : "")).then(function (m) { chartNote.textContent = renderCharts(charts, m, th); }));
          }
          if (!lastSlow || now - lastSlow > 5000 || !active) {
            lastSlow = now;
            jobs.push(api(base + "/evals").then(function (ev) { renderEvals(evalTable, evalChart, ev); }));
            jobs.push(api(base + "/events").then(function (ev) { renderEvents(events, ev); }));
            if (!spec.textContent) jobs.push(api(base + "/spec").then(function (s) { spec.textContent = s.yaml; }));
          }
          if (!lastLog || now - lastLog > 3000 || !active) {
            lastLog = now;
            if (logSel.value) jobs.push(api(base + "/logs?source=" + encodeURIComponent(logSel.value) + "&lines=300").then(showLog));
            else showLog({});
          }
          return Promise.all(jobs).then(function () {
            status.textContent = (active ? "live · updated " : "final · ") + clock(Date.now() / 1000);
            // A finished job changes no more once its evaluations are done: stop polling.
            if (!active) finalDone = !document.querySelector("#evals li");
          });
        }).catch(function (e) { clear(errBox).appendChild(h("div", { "class": "error-box" }, String(e.message || e))); throw e; });
      });
      logSel.onchange = function () { api(base + "/logs?source=" + encodeURIComponent(logSel.value) + "&lines=300").then(showLog).catch(function () {}); };
    }).catch(function (e) { errBox.appendChild(h("div", { "class": "error-box" }, String(e.message || e))); });
  }

  // ---- login page -------------------------------------------------------------------------------
  function loginPage() {
    document.title = "vicreg · sign in";
    var q = new URLSearchParams(location.search);
    clear(app).appendChild(header());
    var here = location.pathname === "/login" ? "/" : location.pathname + location.search;
    var next = safeHref(q.get("next") || here);
    var form = h("form", { method: "post", action: "/login", "class": "card login" },
      h("h1", null, "Sign in"),
      h("p", { "class": "muted" }, "This coordinator requires its token (the contents of its --token-file)."),
      q.get("failed") ? h("div", { "class": "error-box", id: "login-error" }, "That token is not valid.") : null,
      h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "token", required: "required", autofocus: "autofocus" }),
      h("input", { type: "hidden", name: "next", value: next }),
      h("button", { "class": "primary", type: "submit" }, "Sign in"));
    app.appendChild(h("main", null, form));
  }

  function route() {
    stopTimers();
    if (REPORT) return jobPage(REPORT.job.id);
    var path = location.pathname;
    if (app.getAttribute("data-page") === "login") return loginPage();  // the server refused: sign in
    var m = /^\/jobs\/([^/]+)\/?$/.exec(path);
    if (m) return jobPage(decodeURIComponent(m[1]));
    if (path === "/login") return loginPage();
    return jobsPage();
  }
  route();
})();
