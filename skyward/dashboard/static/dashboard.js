// The skyward dashboard: polls api/snapshot once a second and draws plain DOM and SVG (no library, no CDN).
// Everything from the server is put in the page as text (textContent), never as markup.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const HISTORY = 180;  // seconds drawn, as the server keeps them
  const SVGNS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e",
                   "#7f7f7f", "#393b79", "#637939", "#8c6d31"];
  const colours = new Map();
  let tasks = [];  // every task record received in the last HISTORY seconds
  let since = 0;
  let nodes = [];
  let selected = null;

  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function colour(fn) {
    if (!colours.has(fn)) colours.set(fn, PALETTE[colours.size % PALETTE.length]);
    return colours.get(fn);
  }
  function bytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
  }
  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return (s / 60).toFixed(1) + " min";
  }
  function cell(row, text, cls) { row.appendChild(el("td", cls ? { class: cls } : {}, text)); }

  function drawSummary(data) {
    $("pool-id").textContent = data.pool.id + " · " + data.pool.provider;
    const t = data.totals || {};
    const parts = [
      ["nodes", data.pool.nodes], ["slots", t.slots ?? "–"], ["done", t.done ?? 0], ["failed", t.failed ?? 0],
      ["retried", t.retried ?? 0], ["cancelled", t.cancelled ?? 0], ["queued", t.queued ?? 0],
      ["up", seconds(data.pool.uptime)],
    ];
    // instances only: no storage, data transfer or taxes (docs/dashboard.md)
    if (data.cost) parts.push(["cost", data.cost]);
    const box = $("summary");
    box.replaceChildren();
    for (const [label, value] of parts) {
      box.appendChild(document.createTextNode(label + " "));
      box.appendChild(el("b", { id: "total-" + label }, value));
      box.appendChild(document.createTextNode("   "));
    }
  }

  function drawNodes(data) {
    const body = $("nodes").querySelector("tbody");
    body.replaceChildren();
    for (const n of data.nodes) {
      const row = el("tr", { class: n.state === "lost" ? "lost" : "", "data-node": n.name });
      cell(row, n.name);
      cell(row, n.provider + " (" + n.executor + ")");
      cell(row, n.host);
      const state = el("td", { class: "state state-" + n.state }, n.state + (n.reason ? ": " + n.reason : ""));
      row.appendChild(state);
      cell(row, n.busy + " / " + n.slots, "num");
      cell(row, n.done, "num done");
      cell(row, n.failed, "num failed");
      cell(row, n.retried, "num");
      cell(row, n.queue_depth, "num");
      cell(row, bytes(n.bytes_out) + " / " + bytes(n.bytes_in), "num");
      cell(row, n.heartbeat_age === null ? "–" : seconds(n.heartbeat_age) + " ago", "num");
      cell(row, n.threads ?? "–", "num threads");
      cell(row, Object.entries(n.details || {}).map(([k, v]) => k + ": " + v).join(", "));
      body.appendChild(row);
    }
  }

  function drawStream(now) {
    const svg = $("stream");
    const lanes = [];
    for (const n of nodes) for (let s = 0; s < n.slots; s++) lanes.push([n.index, s, n.name]);
    const rowH = 14, left = 150, width = Math.max(svg.clientWidth || 900, 300);
    const height = Math.max(lanes.length, 1) * rowH + 18;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("height", height);
    svg.replaceChildren();
    // The last HISTORY seconds, or less while the pool is young (at least a minute): no empty left half.
    const oldest = tasks.reduce((m, t) => Math.min(m, t.t0), now);
    const span = Math.min(HISTORY, Math.max(60, Math.ceil((now - oldest) / 30) * 30));
    const x = (t) => left + (width - left - 4) * (1 - (now - t) / span);
    const laneOf = new Map(lanes.map((lane, i) => [lane[0] + ":" + lane[1], i]));
    lanes.forEach(([, slot, name], i) => {
      svg.appendChild(el("svg:text", { x: 2, y: i * rowH + 11 }, name + " / " + slot));
      svg.appendChild(el("svg:line", { x1: left, x2: width, y1: (i + 1) * rowH, y2: (i + 1) * rowH, stroke: "#eef0f4" }));
    });
    for (let m = 0; m <= span; m += span > 90 ? 30 : 10) {
      svg.appendChild(el("svg:text", { x: x(now - m) - 12, y: height - 4 }, m ? "-" + m + "s" : "now"));
    }
    for (const task of tasks) {
      const lane = laneOf.get(task.n + ":" + task.s);
      if (lane === undefined) continue;
      const x0 = Math.max(x(task.t0), left), x1 = x(task.t1);
      if (x1 < left) continue;
      const rect = el("svg:rect", {
        x: x0.toFixed(1), y: lane * rowH + 2, width: Math.max(x1 - x0, 1.5).toFixed(1), height: rowH - 4,
        fill: task.ok ? colour(task.f) : "#d62728", class: task.ok ? "task" : "task failed",
      });
      const name = nodes.find((n) => n.index === task.n);
      rect.appendChild(el("svg:title", {}, task.f + " · " + seconds(task.t1 - task.t0) + " · " +
        (name ? name.name : task.n) + (task.ok ? "" : " · failed")));
      rect.addEventListener("click", () => { selected = task; drawDetail(); });
      svg.appendChild(rect);
    }
    const legend = $("legend");
    legend.replaceChildren();
    for (const [fn, c] of colours) {
      const item = el("span");
      item.appendChild(el("i", { style: "background:" + c }));
      item.appendChild(document.createTextNode(fn));
      legend.appendChild(item);
    }
    const failed = el("span");
    failed.appendChild(el("i", { style: "background:#d62728" }));
    failed.appendChild(document.createTextNode("failed"));
    legend.appendChild(failed);
  }

  function drawDetail() {
    const box = $("task-detail");
    box.replaceChildren();
    if (!selected) return;
    const node = nodes.find((n) => n.index === selected.n);
    box.appendChild(el("div", {}, selected.f + " on " + (node ? node.name : selected.n) + " slot " + selected.s +
      ": " + seconds(selected.t1 - selected.t0) + (selected.ok ? ", ok" : ", failed")));
    if (!selected.ok) box.appendChild(el("pre", {}, selected.tb));
  }

  function drawChart(id, points, maxY, unit) {
    const svg = $(id);
    const width = Math.max(svg.clientWidth || 400, 200), height = 140, left = 34;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.replaceChildren();
    const top = Math.max(maxY, 1e-9);
    const x = (i) => left + (width - left - 4) * (points.length > 1 ? i / (points.length - 1) : 1);
    const y = (v) => height - 14 - (height - 24) * v / top;
    svg.appendChild(el("svg:text", { x: 0, y: 10 }, top.toFixed(top < 10 ? 1 : 0) + unit));
    svg.appendChild(el("svg:text", { x: 0, y: height - 14 }, "0"));
    svg.appendChild(el("svg:line", { x1: left, x2: width, y1: y(0), y2: y(0), stroke: "#dde1ea" }));
    if (points.length < 2) return;
    const line = points.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
    svg.appendChild(el("svg:polyline", { points: line, fill: "none", stroke: "#1f77b4", "stroke-width": 1.5 }));
    const last = points[points.length - 1];
    svg.appendChild(el("svg:text", { x: width - 60, y: 10, class: "last" }, last.toFixed(1) + unit));
  }

  function drawCharts(samples) {
    const rates = [], used = [];
    for (let i = 1; i < samples.length; i++) {
      const [t0, n0] = samples[i - 1], [t1, n1, busy, slots] = samples[i];
      rates.push(t1 > t0 ? (n1 - n0) / (t1 - t0) : 0);
      used.push(slots ? 100 * busy / slots : 0);
    }
    drawChart("throughput", rates, Math.max(...rates, 1), "/s");
    drawChart("utilisation", used, 100, "%");
  }

  function drawCalls(calls) {
    const box = $("calls");
    box.replaceChildren();
    if (!calls.length) { box.appendChild(el("p", { class: "muted" }, "No call running.")); return; }
    for (const call of calls) {
      const item = el("div", { class: "call" });
      item.appendChild(el("div", {}, call.label + ": " + call.done + " / " + call.total + " done, " +
        call.in_flight + " in flight" + (call.stopped ? " (stopped at an error)" : "")));
      const bar = el("div", { class: "bar" });
      bar.appendChild(el("div", { style: "width:" + (call.total ? 100 * call.done / call.total : 0).toFixed(1) + "%" }));
      item.appendChild(bar);
      box.appendChild(item);
    }
  }

  function drawProvisioning(events) {
    const body = $("provisioning").querySelector("tbody");
    body.replaceChildren();
    const names = Object.keys(events).sort();
    if (!names.length) {
      const row = el("tr");
      row.appendChild(el("td", { colspan: 5, class: "muted" }, "No bootstrap events (nodes of this provider start without one)."));
      body.appendChild(row);
    }
    for (const name of names) {
      const e = events[name], row = el("tr");
      cell(row, name); cell(row, e.host); cell(row, e.phase); cell(row, seconds(e.elapsed), "num"); cell(row, e.message);
      body.appendChild(row);
    }
  }

  function drawFailures() {
    const box = $("failures");
    const failed = tasks.filter((t) => !t.ok).slice(-5).reverse();
    box.replaceChildren();
    if (!failed.length) { box.appendChild(el("p", { class: "muted" }, "None.")); return; }
    for (const task of failed) {
      const node = nodes.find((n) => n.index === task.n);
      box.appendChild(el("div", { class: "failure" }, task.f + " on " + (node ? node.name : task.n) + ", " +
        new Date(task.t1 * 1000).toLocaleTimeString()));
      box.appendChild(el("pre", { class: "traceback" }, task.tb));
    }
  }

  async function poll() {
    try {
      const response = await fetch("api/snapshot?token=" + encodeURIComponent(token) + "&since=" + since,
                                   { cache: "no-store" });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      const data = await response.json();
      nodes = data.nodes;
      // Sent as lists for size: function index, node, slot, start and end in ms before `now`, ok, traceback.
      for (const [fi, n, s, ago0, ago1, ok, tb] of data.tasks) {
        const task = { f: data.functions[fi], n, s, t0: data.now - ago0 / 1000, t1: data.now - ago1 / 1000, ok, tb };
        tasks.push(task);
        since = Math.max(since, task.t1);
      }
      tasks = tasks.filter((t) => t.t1 >= data.now - HISTORY);
      drawSummary(data);
      drawNodes(data);
      drawStream(data.now);
      drawCharts(data.samples);
      drawCalls(data.calls);
      drawProvisioning(data.provisioning);
      drawFailures();
      const status = $("status");
      status.className = "status";
      status.textContent = data.pool.active ? "live · " + new Date(data.now * 1000).toLocaleTimeString() : "starting…";
      document.body.dataset.updated = String(data.now);
    } catch (error) {
      const status = $("status");
      status.className = "status down";
      status.textContent = "pool unreachable (" + error.message + "): it may have ended";
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
