// The task bank's page: reads only the public API (/api/...). Every text that
// comes from the server or a user is set with textContent, never as HTML.
"use strict";

const VIEW_NAMES = {taskemb: "TaskEmb", textemb: "TextEmb",
                    "textemb+taskemb": "TextEmb+TaskEmb",
                    description: "Description"};
const CLASS_COLORS = {classification: "#1f77b4", qa: "#ff7f0e",
                      tagging: "#2ca02c"};
const SAMPLE = "/static/samples/rt-freshness-200.jsonl";
const SAMPLE_DESCRIPTION =
  "Is a critic's one-sentence movie review snippet fresh or rotten?";
let pollTimer = null;

function $(id) { return document.getElementById(id); }

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function viewName(v) { return VIEW_NAMES[v] || v; }

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, Math.round(s));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    const err = new Error(message);
    err.status = response.status;
    throw err;
  }
  return body;
}

function show(view) {
  for (const v of ["submit", "job", "library"]) $(`view-${v}`).hidden = v !== view;
}

// ---------------------------------------------------------------- submitting

function showSubmitError(message) {
  const p = $("submit-error");
  p.textContent = message;
  p.hidden = !message;
}

async function submitForm(file, kind, description) {
  const data = new FormData();
  if (file) { data.append("file", file, file.name); data.append("kind", kind); }
  if (description) data.append("description", description);
  showSubmitError("");
  $("submit").disabled = true;
  try {
    const job = await api("/api/jobs", {method: "POST", body: data});
    history.pushState({}, "", job.url);
    openJob(job.id);
  } catch (e) {
    showSubmitError(e.message);
  } finally {
    $("submit").disabled = false;
  }
}

function onSubmit(event) {
  event.preventDefault();
  const input = $("file");
  const file = input.files.length ? input.files[0] : null;
  submitForm(file, $("kind").value, $("description").value.trim());
}

async function trySample() {
  const response = await fetch(SAMPLE);
  const blob = await response.blob();
  const file = new File([blob], "rt-freshness-200.jsonl",
                        {type: "application/jsonl"});
  $("kind").value = "classification";
  if (!$("description").value.trim()) $("description").value = SAMPLE_DESCRIPTION;
  submitForm(file, "classification", $("description").value.trim());
}

// ---------------------------------------------------------------- a job

function summary(job) {
  const box = $("job-summary");
  box.replaceChildren();
  const d = job.detected;
  if (job.filename) {
    box.append(el("div", {}, el("strong", {}, "File: "), job.filename,
                  ` (${job.kind})`));
  }
  if (d) {
    const splits = ["train", "validation", "test"].map(s => `${s} ${d.splits[s]}`).join(", ");
    box.append(el("div", {"id": "detected"}, el("strong", {}, "Detected: "),
                  `${d.examples} examples (${splits})`));
    if (d.labels) {
      const labels = Object.entries(d.labels).map(([l, n]) => `${l} ×${n}`).join(", ");
      box.append(el("div", {}, el("strong", {}, `${d.num_labels} labels: `), labels));
    }
    if (d.range) box.append(el("div", {}, el("strong", {}, "Labels: "),
                               `from ${d.range[0]} to ${d.range[1]}, mean ${d.mean.toFixed(3)}`));
    if (d.questions !== null && d.questions !== undefined) {
      box.append(el("div", {}, el("strong", {}, "Questions: "),
                    `${d.questions}, ${d.answered} answered`));
    }
  }
  if (job.description) {
    box.append(el("div", {}, el("strong", {}, "Description: "),
                  el("span", {"id": "job-description"}, job.description)));
  }
}

function progress(job) {
  $("job-state").textContent = job.state;
  $("job-stage").textContent = job.stage && job.stage !== job.state ? `· ${job.stage}` : "";
  $("job-position").textContent = job.position ? `· place ${job.position} in the queue` : "";
  $("job-eta").textContent = job.state === "running" && job.eta_s !== null
    ? `· about ${fmtSeconds(job.eta_s)} left` : "";
  $("job-bar").value = job.progress;
  const err = $("job-error");
  err.textContent = job.error || "";
  err.hidden = !job.error;
}

async function openJob(id) {
  show("job");
  clearTimeout(pollTimer);
  $("job-id").textContent = id;
  $("permalink").textContent = `${location.origin}/jobs/${id}`;
  $("permalink").href = `/jobs/${id}`;
  $("job-result").hidden = true;
  $("job-summary").replaceChildren();
  const poll = async () => {
    let job;
    try {
      job = await api(`/api/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      progress({state: "unknown", stage: "", progress: 0, error: e.message});
      return;
    }
    summary(job);
    progress(job);
    if (job.state === "done") {
      renderResult(id, await api(`/api/jobs/${encodeURIComponent(id)}/result`));
    } else if (job.state === "queued" || job.state === "running") {
      pollTimer = setTimeout(poll, 1000);
    }
  };
  poll();
}

function renderResult(id, result) {
  const base = `/api/jobs/${encodeURIComponent(id)}/result`;
  $("dl-json").href = `${base}?download=true`;
  $("dl-csv").href = `${base}?format=csv`;
  const warnings = $("warnings");
  warnings.replaceChildren(...result.warnings.map(
    w => el("p", {"class": "warning", "role": "note"}, `Warning: ${w}`)));
  const agree = Object.entries(result.agreement).map(
    ([pair, n]) => `${pair.split("/").map(viewName).join(" & ")} share ${n} of their top ${result.top_k}`);
  $("result-meta").textContent =
    `Ranked by ${viewName(result.method)} over the library ${result.library}` +
    (agree.length ? `; ${agree.join("; ")}.` : ".");
  const others = result.views.slice(1);
  $("ranking-head").replaceChildren(
    ...["rank", "source", "class", `score (${viewName(result.method)})`]
      .concat(others.map(v => `${viewName(v)} rank`), ["agreement", "description"])
      .map(h => el("th", {}, h)));
  const body = $("ranking").tBodies[0];
  body.replaceChildren(...result.ranking.map(r => {
    const marks = result.views.map(v => el(
      "span", {"class": r.top_in.includes(v) ? "chip on" : "chip",
               "title": `${viewName(v)}: rank ${r.ranks[v] ?? "-"}`},
      viewName(v)));
    const row = el("tr", {"class": r.class !== result.class && result.class ? "other-class" : ""},
      el("td", {}, r.rank), el("td", {"class": "source"}, r.source),
      el("td", {}, r.class), el("td", {"class": "num"}, r.score.toFixed(4)),
      ...others.map(v => el("td", {"class": "num"}, r.ranks[v] ?? "-")),
      el("td", {"class": "agree"}, ...marks),
      el("td", {"class": "desc"}, el("div", {"title": r.description}, r.description)));
    return row;
  }));
  drawMap($("job-map"), result.map);
  $("job-result").hidden = false;
}

async function adminAction(kind) {
  const id = $("job-id").textContent;
  const headers = {"Authorization": `Bearer ${$("token").value}`};
  const msg = $("admin-msg");
  try {
    if (kind === "cancel") {
      const r = await api(`/api/jobs/${encodeURIComponent(id)}`, {method: "DELETE", headers});
      msg.textContent = `job ${r.state} (${r.stage})`;
    } else {
      headers["Content-Type"] = "application/json";
      const r = await api(`/api/jobs/${encodeURIComponent(id)}/publish`, {
        method: "POST", headers,
        body: JSON.stringify({name: $("publish-name").value.trim()})});
      msg.textContent = `added as ${r.name}; the library has ${r.tasks} tasks`;
    }
  } catch (e) {
    msg.textContent = e.message;
  }
}

// ---------------------------------------------------------------- task map

function drawMap(box, points) {
  const NS = "http://www.w3.org/2000/svg";
  box.replaceChildren();
  if (!points || points.length < 2) return;
  const W = 640, H = 360, PAD = 40;
  const xs = points.map(p => p.x), ys = points.map(p => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = x => PAD + (x - x0) / ((x1 - x0) || 1) * (W - 2 * PAD - 120);
  const sy = y => H - PAD - (y - y0) / ((y1 - y0) || 1) * (H - 2 * PAD);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "task map");
  const placed = [];  // Label boxes [x0, x1, y]: labels do not overlap.
  const labelY = (x, y, width) => {
    for (const dy of [0, 12, -12, 24, -24, 36, -36]) {
      if (!placed.some(([a, b, c]) => x < b && a < x + width && Math.abs(c - (y + dy)) < 11)) {
        placed.push([x, x + width, y + dy]);
        return y + dy;
      }
    }
    return y;
  };
  for (const p of [...points].sort((a, b) => b.target - a.target)) {
    const g = document.createElementNS(NS, "g");
    const c = document.createElementNS(NS, "circle");
    c.setAttribute("cx", sx(p.x)); c.setAttribute("cy", sy(p.y));
    c.setAttribute("r", p.target ? 8 : 5);
    c.setAttribute("fill", CLASS_COLORS[p.class] || "gray");
    if (p.target) { c.setAttribute("stroke", "#d62728"); c.setAttribute("stroke-width", 3); }
    const t = document.createElementNS(NS, "text");
    const name = p.target ? `${p.name} (yours)` : p.name;
    const x = sx(p.x) + (p.target ? 13 : 9);
    t.setAttribute("x", x);
    t.setAttribute("y", labelY(x, sy(p.y), 6.5 * name.length) + 4);
    t.setAttribute("class", p.target ? "target" : "");
    t.textContent = name;
    const title = document.createElementNS(NS, "title");
    title.textContent = `${p.name} (${p.class})`;
    g.append(c, t, title);
    svg.append(g);
  }
  const legend = el("p", {"class": "legend"}, ...Object.entries(CLASS_COLORS).map(
    ([k, color]) => el("span", {"style": `color:${color}`}, `● ${k} `)));
  box.append(svg, legend);
}

// ---------------------------------------------------------------- library

async function openLibrary() {
  show("library");
  const lib = await api("/api/library");
  $("library-lead").textContent =
    `${lib.tasks.length} tasks in the library ${lib.name}, each embedded with TextEmb and TaskEmb.`;
  $("library-table").tBodies[0].replaceChildren(...lib.tasks.map(t => el("tr", {},
    el("td", {"class": "source"}, t.name), el("td", {}, t.class),
    el("td", {"class": "num"}, t.examples ?? ""),
    el("td", {"class": "desc"}, el("div", {"title": t.description}, t.description)))));
  drawMap($("library-map"), (await api("/api/library/map")).points);
}

// ---------------------------------------------------------------- routing

function route() {
  clearTimeout(pollTimer);
  const path = location.pathname;
  const job = path.match(/^\/jobs\/([A-Za-z0-9_-]+)$/);
  if (job) openJob(job[1]);
  else if (path === "/library") openLibrary().catch(e => { $("library-lead").textContent = e.message; });
  else show("submit");
}

async function health() {
  try {
    const h = await api("/api/health");
    $("health").textContent = `${h.workers.length} worker(s) · ${h.queued} queued · ${h.running} running`;
  } catch (e) {
    $("health").textContent = "server unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("submit-form").addEventListener("submit", onSubmit);
  $("try-sample").addEventListener("click", trySample);
  $("cancel").addEventListener("click", () => adminAction("cancel"));
  $("publish").addEventListener("click", () => adminAction("publish"));
  for (const a of document.querySelectorAll("a[data-nav]")) {
    a.addEventListener("click", e => {
      e.preventDefault();
      history.pushState({}, "", a.getAttribute("href"));
      route();
    });
  }
  window.addEventListener("popstate", route);
  route();
  health();
  setInterval(health, 5000);
});
