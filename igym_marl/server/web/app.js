// igym-marl dashboard: drives one HTTP session (/sessions) and draws its windows on canvases.
// No outside network and no libraries: everything here is served by the package.
"use strict";

const COLORS = ["#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#495057"];
const $ = (id) => document.getElementById(id);

const state = {
  catalog: null, task: null, session: null, running: false, busy: false,
  hist: [], lastRenderMs: null, renders: 0,
};

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) { opts.headers["content-type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const d = data && data.detail;
    const msg = Array.isArray(d) ? d.map((e) => e.msg).join("; ") : (d || r.statusText);
    const err = new Error(`${r.status}: ${msg}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

function setStatus(text) { $("status").textContent = text; }

// ------------------------------------------------------------------ charts
function drawChart(canvas, series, opts) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 46, R = 8, T = 8, B = 22;
  ctx.clearRect(0, 0, W, H);
  const n = Math.max(opts.n || 0, 2);
  const log = !!opts.log;
  const tf = (v) => (log ? Math.log10(Math.max(v, 1e-9)) : v);
  let lo = Infinity, hi = -Infinity;
  const consider = (v) => { if (v !== null && v !== undefined && isFinite(v) && (!log || v > 0)) { lo = Math.min(lo, tf(v)); hi = Math.max(hi, tf(v)); } };
  series.forEach((s) => s.data.forEach(consider));
  (opts.hlines || []).forEach((h) => consider(h.y));
  if (opts.ymin !== undefined) lo = Math.min(lo, tf(opts.ymin));
  if (!isFinite(lo)) { lo = log ? 0 : 0; hi = 1; }
  if (!log) lo = Math.min(lo, 0);
  if (hi - lo < 1e-9) hi = lo + 1;
  const pad = (hi - lo) * 0.08; hi += pad; if (log) lo -= pad;
  const X = (i) => L + (W - L - R) * (n <= 1 ? 0 : i / (n - 1));
  const Y = (v) => T + (H - T - B) * (1 - (tf(v) - lo) / (hi - lo));
  ctx.strokeStyle = "#d0d5dd"; ctx.fillStyle = "#667085"; ctx.font = "10px system-ui"; ctx.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const tv = lo + (hi - lo) * k / 4, y = T + (H - T - B) * (1 - k / 4);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    const v = log ? Math.pow(10, tv) : tv;
    ctx.fillText(v >= 1000 ? v.toExponential(0) : (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2)), 2, y + 3);
  }
  ctx.fillText("window", W - R - 36, H - 6);
  ctx.fillText("0", L, H - 6); ctx.fillText(String(n - 1), W - R - 14, H - 16);
  (opts.hlines || []).forEach((h) => {
    ctx.save(); ctx.setLineDash([5, 4]); ctx.strokeStyle = h.color; ctx.beginPath();
    ctx.moveTo(L, Y(h.y)); ctx.lineTo(W - R, Y(h.y)); ctx.stroke(); ctx.restore();
    if (h.label) { ctx.fillStyle = h.color; ctx.fillText(h.label, W - R - ctx.measureText(h.label).width - 2, Y(h.y) - 3); }
  });
  let lx = L + 4;
  series.forEach((s) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.6; ctx.beginPath();
    let pen = false;
    s.data.forEach((v, i) => {
      if (v === null || v === undefined || !isFinite(v) || (log && v <= 0)) { pen = false; return; }
      if (pen) ctx.lineTo(X(i), Y(v)); else { ctx.moveTo(X(i), Y(v)); pen = true; }
    });
    ctx.stroke();
    ctx.fillStyle = s.color; ctx.fillText(s.name, lx, T + 10); lx += ctx.measureText(s.name).width + 12;
  });
}

function col(key) { return state.hist.map((h) => h[key]); }

function render() {
  const t0 = performance.now();
  const task = state.task, hist = state.hist, n = task ? task.episode_windows + 1 : 2;
  const tenants = task ? task.tenants : [];
  drawChart($("c-load"), [
    { name: "arrivals req/s", color: COLORS[0], data: col("request_arrival_rate") },
    { name: "queue", color: COLORS[1], data: col("queue_depth") },
    { name: "running", color: COLORS[2], data: col("active_requests") },
  ], { n, log: true, hlines: task ? [{ y: task.capacity_rps, color: "#c92a2a", label: "capacity req/s" }] : [] });
  for (const [id, key, slo] of [["c-ttft", "ttft_p99_ms", "ttft_slo_ms"], ["c-tpot", "tpot_p99_ms", "tpot_slo_ms"]]) {
    drawChart($(id), tenants.map((t, i) => ({
      name: t.name, color: COLORS[i], data: hist.map((h) => (h.tenants[i] ? h.tenants[i][key] : null)),
    })), { n, log: true, hlines: tenants.map((t, i) => ({ y: t[slo], color: COLORS[i], label: `${t.name} SLO` })) });
  }
  drawChart($("c-mem"), [
    { name: "KV %", color: COLORS[3], data: hist.map((h) => 100 * h.kv_cache_occupancy) },
    { name: "GPU GB", color: COLORS[0], data: col("gpu_memory_used_gb") },
  ], { n, hlines: [{ y: 100, color: "#c92a2a", label: "full KV pool" }] });
  drawChart($("c-knobs"), [
    { name: "log2 batch cap", color: COLORS[0], data: hist.map((h) => Math.log2(h.knobs.batch_cap)) },
    { name: "KV budget x10", color: COLORS[3], data: hist.map((h) => 10 * h.knobs.kv_budget_fraction) },
    { name: "draft depth", color: COLORS[2], data: hist.map((h) => h.knobs.speculation_depth) },
  ], { n });
  drawChart($("c-score"), [
    { name: "score so far", color: COLORS[2], data: col("score_so_far") },
    { name: "window pace (reward x windows / 100)", color: COLORS[1],
      data: hist.map((h) => (h.window ? h.reward * h.episode_windows / 100 : null)) },
  ], { n });
  const last = hist[hist.length - 1];
  if (last) {
    $("score").textContent = last.score_so_far.toFixed(3);
    $("window").textContent = `${last.window} / ${last.episode_windows}`;
    $("slo").textContent = (100 * last.slo_compliance_rate).toFixed(1) + " %";
    $("tps").textContent = last.throughput_tps.toFixed(0) + " tok/s";
    const k = last.knobs;
    $("knobs").innerHTML = [
      ["batch cap", `${k.batch_cap} seqs`], ["KV budget", `${(100 * k.kv_budget_fraction).toFixed(0)} % of pool`],
      ["draft depth", `${k.speculation_depth} tokens`], ["weights", k.quantization_tier],
      ["chunked prefill", k.prefill_decode_split ? "on" : "off"], ["priority routing", k.priority_routing ? "on" : "off"],
    ].map(([a, b]) => `<span>${a}: <b data-knob="${a}">${b}</b></span>`).join("");
  }
  state.lastRenderMs = performance.now() - t0;
  state.renders += 1;
}

// ------------------------------------------------------------------ episode control
function policyName() { return $("policy").value; }

function manualAction() {
  const v = (id) => $("k-" + id);
  return {
    batch_cap: Number(v("batch_cap").value), kv_budget_fraction: Number(v("kv_budget_fraction").value),
    speculation_depth: Number(v("speculation_depth").value), quantization_tier: v("quantization_tier").value,
    prefill_decode_split: v("prefill_decode_split").checked, priority_routing: v("priority_routing").checked,
  };
}

function fillManual(k) {
  $("k-batch_cap").value = k.batch_cap; $("k-kv_budget_fraction").value = k.kv_budget_fraction;
  $("k-speculation_depth").value = k.speculation_depth; $("k-quantization_tier").value = k.quantization_tier;
  $("k-prefill_decode_split").checked = k.prefill_decode_split; $("k-priority_routing").checked = k.priority_routing;
}

function record(resp) {
  const o = resp.observation;
  state.hist.push({ ...o, reward: resp.reward || 0 });
  const t0 = performance.now();
  render();
  state.stepToRenderMs = performance.now() - t0;
  if (resp.done) {
    const e = o.episode || {};
    setStatus(`episode over: score ${(e.score || 0).toFixed(3)} (goodput ${(e.goodput || 0).toFixed(3)})`);
    stop(); $("step").disabled = true; $("run").disabled = true;
  }
}

async function start() {
  stop();
  if (state.session) { api("DELETE", `/sessions/${state.session}`).catch(() => {}); state.session = null; }
  const taskId = $("task").value, seed = Number($("seed").value);
  state.task = state.catalog.tasks.find((t) => t.id === taskId);
  state.hist = [];
  setStatus("starting...");
  try {
    const resp = await api("POST", "/sessions", { task_id: taskId, seed });
    state.session = resp.session_id;
    record(resp);
    setStatus(`session ${state.session.slice(0, 8)}: ${taskId}, seed ${resp.observation.seed}, ${policyName()}`);
    $("run").disabled = policyName() === "manual"; $("step").disabled = false;
  } catch (e) { setStatus(`could not start: ${e.message}`); }
}

async function stepOnce() {
  if (!state.session || state.busy) return false;
  state.busy = true;
  $("manual-error").textContent = "";
  const action = policyName() === "manual" ? manualAction() : { policy: policyName() };
  try {
    const resp = await api("POST", `/sessions/${state.session}/step`, { action });
    record(resp);
    return !resp.done;
  } catch (e) {
    if (policyName() === "manual") $("manual-error").textContent = e.message; else setStatus(e.message);
    stop();
    return false;
  } finally { state.busy = false; }
}

async function runLoop() {
  state.running = true; $("run").disabled = true; $("pause").disabled = false;
  while (state.running) {
    const more = await stepOnce();
    if (!more) break;
    await new Promise((r) => setTimeout(r, Number($("delay").value)));
  }
  stop();
}

function stop() {
  state.running = false; $("pause").disabled = true;
  $("run").disabled = !state.session || policyName() === "manual" || (state.hist.length && state.hist[state.hist.length - 1].done);
}

async function loadLeaderboard() {
  const table = $("leaderboard");
  try {
    const lb = await api("GET", "/leaderboard");
    const esc = (s) => String(s).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
    table.innerHTML = "<thead><tr>" + lb.columns.map((c) => `<th>${esc(c)}</th>`).join("") + "</tr></thead><tbody>" +
      lb.rows.map((r) => "<tr>" + r.map((c) => `<td>${esc(c)}</td>`).join("") + "</tr>").join("") + "</tbody>";
  } catch (e) { table.innerHTML = `<tbody><tr><td>${e.message}</td></tr></tbody>`; }
}

async function init() {
  state.catalog = await api("GET", "/tasks");
  const sel = $("task");
  state.catalog.tasks.forEach((t) => { const o = document.createElement("option"); o.value = t.id; o.textContent = t.id; sel.appendChild(o); });
  sel.value = state.catalog.default_task;
  $("policy").addEventListener("change", () => {
    const manual = policyName() === "manual";
    $("manual").classList.toggle("hidden", !manual);
    const last = state.hist[state.hist.length - 1];
    if (manual && last) fillManual(last.knobs);  // start from the knobs the engine runs with
    stop();
  });
  $("start").addEventListener("click", start);
  $("run").addEventListener("click", runLoop);
  $("pause").addEventListener("click", stop);
  $("step").addEventListener("click", stepOnce);
  $("delay").addEventListener("input", () => { $("delay-ms").textContent = `${$("delay").value} ms`; });
  render();
  loadLeaderboard();
}

// What the browser test reads.
window.dashboard = {
  points: () => ({ windows: state.hist.length, renders: state.renders }),
  lastRenderMs: () => state.lastRenderMs,
  stepToRenderMs: () => state.stepToRenderMs,
  last: () => state.hist[state.hist.length - 1] || null,
  session: () => state.session,
  busy: () => state.busy,  // a step is in flight (pausing lets it land)
};

init().catch((e) => setStatus(`could not load the task catalog: ${e.message}`));
