// igym-marl dashboard: drives one HTTP session (/sessions) and draws its windows on canvases.
// No outside network and no libraries: everything here is served by the package.
"use strict";

const COLORS = ["#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#495057"];
const $ = (id) => document.getElementById(id);

const state = {
  catalog: null, task: null, kind: "single", session: null, running: false, busy: false,
  hist: [], lastRenderMs: null, renders: 0, refs: {}, policyShown: null,
};
// The server-side policies the dashboard offers per kind of task, and the baselines it draws.
const SINGLE_POLICIES = ["heuristic", "vllm-default", "best-constant", "mappo"];
const REFERENCES = { single: ["vllm-default", "heuristic"], cluster: ["vllm-default", "hpa"] };

function clusterTask(id) { return state.catalog.cluster.tasks.find((t) => t.id === id) || null; }
function taskEntry(id) { return clusterTask(id) || state.catalog.tasks.find((t) => t.id === id); }

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
  if (opts.ymax !== undefined) hi = tf(opts.ymax);  // a fixed top (a percentage stops at 100)
  else if (log) { lo = Math.floor(lo); hi = Math.ceil(hi); if (hi - lo < 1) hi = lo + 1; }  // whole decades
  else hi += (hi - lo) * 0.08;
  const X = (i) => L + (W - L - R) * (n <= 1 ? 0 : i / (n - 1));
  const Y = (v) => T + (H - T - B) * (1 - (tf(v) - lo) / (hi - lo));
  ctx.strokeStyle = "#d0d5dd"; ctx.fillStyle = "#667085"; ctx.font = "10px system-ui"; ctx.lineWidth = 1;
  // ticks: each decade on a log axis (1, 10, 100 ...), round steps on a linear one
  const ticks = [];
  if (log) { for (let d = lo; d <= hi + 1e-9; d++) ticks.push(d); }
  else { const step = niceStep((hi - lo) / 4); for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(v); }
  ticks.forEach((tv) => {
    const y = T + (H - T - B) * (1 - (tv - lo) / (hi - lo));
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.fillText(tickLabel(log ? Math.pow(10, tv) : tv), 2, y + 3);
  });
  ctx.fillText("window", W - R - 36, H - 6);
  ctx.fillText("0", L, H - 6); ctx.fillText(String(n - 1), W - R - 14, H - 16);
  (opts.hlines || []).forEach((h) => {
    ctx.save(); ctx.setLineDash([5, 4]); ctx.strokeStyle = h.color; ctx.beginPath();
    ctx.moveTo(L, Y(h.y)); ctx.lineTo(W - R, Y(h.y)); ctx.stroke(); ctx.restore();
    if (h.label) {  // at the right end, or the left (two lines close together keep both labels readable)
      ctx.fillStyle = h.color;
      ctx.fillText(h.label, h.left ? L + 4 : W - R - ctx.measureText(h.label).width - 2, Y(h.y) + (h.left ? 11 : -3));
    }
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

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw > 0 ? raw : 1)));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= raw) || 10 * p;
}

function tickLabel(v) {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1e4) return v.toExponential(0).replace("e+", "e");
  if (Math.abs(v) >= 10 || Number.isInteger(v)) return String(Math.round(v));
  return String(Number(v.toPrecision(2)));
}

function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

function col(key) { return state.hist.map((h) => h[key]); }

function render() {
  const t0 = performance.now();
  if (state.kind === "cluster") renderCluster(); else renderSingle();
  state.lastRenderMs = performance.now() - t0;
  state.renders += 1;
}

function scoreHlines() {
  const refs = Object.entries(state.refs).filter(([, v]) => typeof v === "number");
  return refs.map(([name, y], i) => ({ y, color: ["#495057", "#ae3ec9"][i % 2], label: `${name} ends at ${y.toFixed(3)}`, left: i % 2 === 1 }));
}

function renderTenants(last, hist) {
  const cluster = state.kind === "cluster";
  $("tenants").innerHTML = "<tr><th>tenant</th><th>weight</th><th>score so far</th><th>SLO met / missed</th>" +
    (cluster ? "<th>routed last window, per replica</th>" : "") + "</tr>" +
    last.tenants.map((t, i) => {
      const met = hist.reduce((a, h) => a + (h.tenants[i] ? h.tenants[i].slo_met : 0), 0);
      const missed = hist.reduce((a, h) => a + (h.tenants[i] ? h.tenants[i].slo_missed : 0), 0);
      const sc = t.score_so_far === null ? "-" : t.score_so_far.toFixed(3);
      const routed = cluster ? `<td>${(t.routed || []).map((x, r) => `r${r}: ${x}`).join(", ") || "-"}</td>` : "";
      return `<tr><td style="color:${COLORS[i]}">${t.name}</td><td>${t.weight}</td><td data-tenant="${t.name}">${sc}</td><td>${met} / ${missed}</td>${routed}</tr>`;
    }).join("");
}

function renderCluster() {
  const task = state.task, hist = state.hist, n = task.episode_windows + 1, N = task.replicas;
  const reps = Array.from({ length: N }, (_, i) => i);
  const perReplica = (f) => reps.map((i) => ({ name: `r${i}`, color: COLORS[i % COLORS.length], data: hist.map((h) => f(h.replicas[i], h)) }));
  drawChart($("c-fleet"), [
    { name: "active", color: COLORS[2], data: hist.map((h) => h.fleet.active) },
    { name: "starting", color: COLORS[1], data: hist.map((h) => h.fleet.starting) },
    { name: "draining", color: COLORS[3], data: hist.map((h) => h.fleet.draining) },
    { name: "target", color: COLORS[0], data: hist.map((h) => h.fleet.target) },
  ], { n, ymax: N });
  drawChart($("c-routed"), perReplica((r, h) => (h.window ? r.routed / h.window_s : null)),
    { n, hlines: [{ y: task.replica_capacity_rps, color: "#c92a2a", label: "one replica's capacity req/s" }] });
  drawChart($("c-cqueue"), perReplica((r) => r.queue_depth), { n, log: true });
  drawChart($("c-ckv"), perReplica((r) => 100 * r.kv_occupancy), { n, ymax: 100 });
  drawChart($("c-cost"), [
    { name: "GPU-hours billed %", color: COLORS[5], data: hist.map((h) => (h.window && h.fleet.fleet_usd ? 100 * h.fleet.billed_usd / h.fleet.fleet_usd : null)) },
    { name: "SLO attainment %", color: COLORS[2], data: hist.map((h) => {
      const met = h.replicas.reduce((a, r) => a + r.slo_met, 0), all = met + h.replicas.reduce((a, r) => a + r.slo_missed, 0);
      return all ? 100 * met / all : null;
    }) },
  ], { n, ymax: 100 });
  drawChart($("c-cscore"), [{ name: "score so far", color: COLORS[2], data: col("score_so_far") }], { n, hlines: scoreHlines() });
  const last = hist[hist.length - 1];
  if (!last) return;
  $("score").textContent = last.score_so_far.toFixed(3);
  $("window").textContent = `${last.window} / ${last.episode_windows}`;
  $("fleet").textContent = `${last.fleet.active} / ${last.fleet.target}`;
  $("rule").textContent = last.fleet.rule;
  $("gpushare").textContent = (100 * last.fleet.gpu_share_so_far).toFixed(1) + " %";
  renderTenants(last, hist);
  const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(0) + " %");
  $("replicas").innerHTML = "<tr><th>replica</th><th>state</th><th>routed (share)</th><th>waiting</th><th>running</th>" +
    "<th>KV</th><th>busy</th><th>prefix hits</th><th>SLO met / missed</th><th>knobs</th></tr>" +
    last.replicas.map((r) => {
      const k = r.knobs, share = last.fleet.arrivals ? r.routed / last.fleet.arrivals : null;
      const knobs = `batch ${k.batch_cap}, KV ${(100 * k.kv_budget_fraction).toFixed(0)} %, draft ${k.speculation_depth}, ${k.quantization_tier}, ` +
        `${k.prefill_decode_split ? "chunked" : "prefill-first"}, priority ${k.priority_routing ? "on" : "off"}`;
      return `<tr data-replica="${r.index}"><td style="color:${COLORS[r.index % COLORS.length]}">r${r.index}</td>` +
        `<td class="state-${r.state}" data-state="${r.state}">${r.state}</td><td>${r.routed} (${pct(share)})</td><td>${r.queue_depth}</td>` +
        `<td>${r.running}</td><td>${pct(r.kv_occupancy)}</td><td>${pct(r.busy_fraction)}</td><td>${pct(r.prefix_hit_rate)}</td>` +
        `<td>${r.slo_met} / ${r.slo_missed}</td><td>${knobs}</td></tr>`;
    }).join("");
}

function renderSingle() {
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
    { name: "KV pool occupied %", color: COLORS[3], data: hist.map((h) => 100 * h.kv_cache_occupancy) },
  ], { n, ymax: 100 });
  drawChart($("c-knobs"), [
    { name: "batch cap (log2)", color: COLORS[0], data: hist.map((h) => Math.log2(h.knobs.batch_cap)) },
    { name: "KV budget (tenths)", color: COLORS[3], data: hist.map((h) => 10 * h.knobs.kv_budget_fraction) },
    { name: "draft depth", color: COLORS[2], data: hist.map((h) => h.knobs.speculation_depth) },
  ], { n });
  drawChart($("c-score"), [
    { name: "score so far", color: COLORS[2], data: col("score_so_far") },
    { name: "window pace (reward x windows / 100)", color: COLORS[1],
      data: hist.map((h) => (h.window ? h.reward * h.episode_windows / 100 : null)) },
  ], { n, hlines: scoreHlines() });
  const last = hist[hist.length - 1];
  if (last) {
    $("score").textContent = last.score_so_far.toFixed(3);
    $("window").textContent = `${last.window} / ${last.episode_windows}`;
    $("slo").textContent = (100 * last.slo_compliance_rate).toFixed(1) + " %";
    $("tps").textContent = last.throughput_tps.toFixed(0) + " tok/s";
    $("gpu").textContent = last.gpu_memory_used_gb.toFixed(1) + " GB";
    const k = last.knobs;
    $("knobs").innerHTML = [
      ["batch cap", plural(k.batch_cap, "seq", "seqs")], ["KV budget", `${(100 * k.kv_budget_fraction).toFixed(0)} % of pool`],
      ["draft depth", plural(k.speculation_depth, "token", "tokens")], ["weights", k.quantization_tier],
      ["chunked prefill", k.prefill_decode_split ? "on" : "off"], ["priority routing", k.priority_routing ? "on" : "off"],
    ].map(([a, b]) => `<span>${a}: <b data-knob="${a}">${b}</b></span>`).join("");
    renderTenants(last, hist);
    $("agents").innerHTML = "<tr><th>agent</th><th>its knobs now</th><th>action index</th></tr>" +
      Object.entries(state.catalog.multi_agent.agents).map(([name, a]) => {
        const idx = (last.agent_actions || {})[name];  // the server encodes it (Team.encode)
        const shown = a.knobs.map((kn) => `${kn} = ${k[kn]}`).join(", ");
        return `<tr><td>${name}</td><td data-agent="${name}">${shown}</td><td>${idx === null || idx === undefined ? "between levels" : `${idx} of ${a.n}`}</td></tr>`;
      }).join("");
  }
}

// ------------------------------------------------------------------ episode control
function policyName() { return $("policy").value; }

function manualAction() {
  const v = (id) => $("k-" + id);
  const knobs = {
    batch_cap: Number(v("batch_cap").value), kv_budget_fraction: Number(v("kv_budget_fraction").value),
    speculation_depth: Number(v("speculation_depth").value), quantization_tier: v("quantization_tier").value,
    prefill_decode_split: v("prefill_decode_split").checked, priority_routing: v("priority_routing").checked,
  };
  // a cluster window: the knobs on every replica, the routing rule and the autoscaler's target
  return state.kind === "cluster" ? { knobs, rule: v("rule").value, target: Number(v("target").value) } : knobs;
}

function fillManual(last) {  // start from what the engine runs with
  const k = state.kind === "cluster" ? last.replicas[0].knobs : last.knobs;
  $("k-batch_cap").value = k.batch_cap; $("k-kv_budget_fraction").value = k.kv_budget_fraction;
  $("k-speculation_depth").value = k.speculation_depth; $("k-quantization_tier").value = k.quantization_tier;
  $("k-prefill_decode_split").checked = k.prefill_decode_split; $("k-priority_routing").checked = k.priority_routing;
  if (state.kind === "cluster") { $("k-rule").value = last.fleet.rule; $("k-target").value = last.fleet.target; }
}

// The policy menu offers what the selected task's kind takes; changing the task waits for Start.
function fillPolicies() {
  const cluster = clusterTask($("task").value) !== null;
  const names = [...(cluster ? state.catalog.cluster.policies : SINGLE_POLICIES), "manual"];
  const sel = $("policy"), keep = sel.value;
  sel.innerHTML = names.map((p) => `<option value="${p}">${p}</option>`).join("");
  sel.value = names.includes(keep) ? keep : names[0];
  $("manual-cluster").classList.toggle("hidden", !cluster);
  if (cluster) $("k-target").max = clusterTask($("task").value).replicas;
}

function record(resp) {
  const o = resp.observation;
  state.hist.push({ ...o, reward: resp.reward || 0, done: !!resp.done });
  const t0 = performance.now();
  render();
  state.stepToRenderMs = performance.now() - t0;
  if (resp.done) {
    const e = o.episode || {};
    setStatus(`episode over: score ${(e.score || 0).toFixed(3)} (goodput ${(e.goodput || 0).toFixed(3)})`);
    stop(); $("step").disabled = true; $("run").disabled = true;
    $("grade").disabled = false;
  }
}

async function start() {
  stop();
  if (state.session) { api("DELETE", `/sessions/${state.session}`).catch(() => {}); state.session = null; }
  const taskId = $("task").value, seed = Number($("seed").value);
  state.task = taskEntry(taskId);
  state.kind = clusterTask(taskId) ? "cluster" : "single";
  document.body.classList.toggle("cluster-mode", state.kind === "cluster");
  state.hist = []; state.refs = {};
  $("grade").disabled = true; $("grade-result").textContent = "";
  setStatus("starting...");
  try {
    const resp = await api("POST", "/sessions", { mode: state.kind, task_id: taskId, seed });
    state.session = resp.session_id;
    record(resp);
    state.sessionTitle = `session ${state.session.slice(0, 8)}: ${taskId}, seed ${resp.observation.seed}`;
    showPolicy();
    loadReferences(taskId, resp.observation.seed);
    $("export").classList.remove("hidden");
    $("run").disabled = policyName() === "manual"; $("step").disabled = false;
  } catch (e) { setStatus(`could not start: ${e.message}`); }
}

async function stepOnce() {
  if (!state.session || state.busy) return false;
  state.busy = true;
  $("manual-error").textContent = "";
  if (policyName() === "manual") {
    const fields = ["batch_cap", "kv_budget_fraction", "speculation_depth", ...(state.kind === "cluster" ? ["target"] : [])];
    const empty = fields.filter((f) => $("k-" + f).value.trim() === "");
    if (empty.length) {
      $("manual-error").textContent = `${empty.join(", ")} is empty: give a value (the engine is not stepped)`;
      state.busy = false;
      return false;
    }
  }
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

function showPolicy() {
  if (state.session && !(state.hist.length && state.hist[state.hist.length - 1].done)) {
    setStatus(`${state.sessionTitle}, ${policyName()}`);
  }
}

// Where vLLM's default and the tuned heuristic (on a cluster: the tuned HPA autoscaler) end on this
// task and seed (run by the server): dashed lines on the score chart.
async function loadReferences(taskId, seed) {
  const mine = state.session, names = REFERENCES[state.kind];
  state.refs = Object.fromEntries(names.map((p) => [p, "running"]));
  for (const p of names) {
    try {
      const r = await api("GET", `/baseline?policy=${p}&task_id=${taskId}&seed=${seed}`);
      if (state.session === mine) state.refs[p] = r.score;
    } catch (e) { if (state.session === mine) state.refs[p] = `failed: ${e.message}`; }
    if (state.session === mine) render();
  }
}

function download(name, text, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

async function exportLog() {  // {task_id, seed, actions}: what /grader replays
  const log = await api("GET", `/sessions/${state.session}/log`);
  download(`episode-${log.task_id}-${log.seed}.json`, JSON.stringify(log, null, 1), "application/json");
  return log;
}

function exportCsv() {  // one row a window: the observation's numbers
  if (state.kind === "cluster") return exportClusterCsv();
  const keys = Object.keys(state.hist[0]).filter((k) => typeof state.hist[0][k] === "number");
  const tkeys = state.hist[0].tenants.flatMap((t) => ["slo_met", "slo_missed", "ttft_p99_ms", "tpot_p99_ms"].map((f) => [t.name, f]));
  const kkeys = Object.keys(state.hist[0].knobs);
  const rows = [[...keys, ...kkeys, ...tkeys.map(([n, f]) => `${n}.${f}`)].join(",")];
  state.hist.forEach((h) => rows.push([...keys.map((k) => h[k]), ...kkeys.map((k) => h.knobs[k]),
    ...tkeys.map(([n, f]) => { const t = h.tenants.find((x) => x.name === n); return t && t[f] !== null ? t[f] : ""; })].join(",")));
  const last = state.hist[state.hist.length - 1];
  download(`episode-${last.task_id}-${last.seed}.csv`, rows.join("\n") + "\n", "text/csv");
  return rows.length - 1;
}

function exportClusterCsv() {  // one row a window: the fleet's numbers, then each replica's
  const h0 = state.hist[0], N = h0.replicas.length;
  const fkeys = Object.keys(h0.fleet), rkeys = ["state", "routed", "queue_depth", "running", "kv_occupancy", "busy_fraction",
    "prefix_hit_rate", "slo_met", "slo_missed", "throughput_tps"];
  const kkeys = Object.keys(h0.replicas[0].knobs);
  const head = ["window", "score_so_far", "reward", ...fkeys.map((k) => `fleet.${k}`)];
  for (let i = 0; i < N; i++) head.push(...[...rkeys, ...kkeys].map((k) => `r${i}.${k}`));
  const rows = [head.join(",")];
  const cell = (v) => (v === null || v === undefined ? "" : v);
  state.hist.forEach((h) => {
    const row = [h.window, h.score_so_far, h.reward, ...fkeys.map((k) => h.fleet[k])];
    h.replicas.forEach((r) => row.push(...rkeys.map((k) => cell(r[k])), ...kkeys.map((k) => r.knobs[k])));
    rows.push(row.join(","));
  });
  const last = state.hist[state.hist.length - 1];
  download(`episode-${last.task_id}-${last.seed}.csv`, rows.join("\n") + "\n", "text/csv");
  return rows.length - 1;
}

async function grade() {
  try {
    const g = await api("POST", "/grader", { session_id: state.session });
    $("grade-result").textContent = `grader (replayed the log): score ${g.score.toFixed(4)}, goodput ${g.goodput.toFixed(4)}`;
  } catch (e) { $("grade-result").textContent = e.message; }
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
  for (const [label, tasks] of [["one replica", state.catalog.tasks], ["cluster: replicas, router, autoscaler", state.catalog.cluster.tasks]]) {
    const g = document.createElement("optgroup"); g.label = label;
    tasks.forEach((t) => { const o = document.createElement("option"); o.value = t.id; o.textContent = t.id; g.appendChild(o); });
    sel.appendChild(g);
  }
  sel.value = state.catalog.default_task;
  $("k-rule").innerHTML = state.catalog.cluster.rules.map((r) => `<option value="${r}">${r}</option>`).join("");
  fillPolicies();
  sel.addEventListener("change", () => {  // another task: its policies; the episode under way stops
    fillPolicies();
    stop();
    if (state.session && (clusterTask(sel.value) !== null) !== (state.kind === "cluster")) {
      $("run").disabled = true; $("step").disabled = true;
      setStatus(`press Start to play ${sel.value}`);
    }
  });
  $("policy").addEventListener("change", () => {
    const manual = policyName() === "manual";
    $("manual").classList.toggle("hidden", !manual);
    const last = state.hist[state.hist.length - 1];
    if (manual && last) fillManual(last);  // start from the knobs the engine runs with
    showPolicy();  // the header names the policy that steps from now on
    stop();
  });
  $("export-json").addEventListener("click", () => exportLog().catch((e) => setStatus(e.message)));
  $("export-csv").addEventListener("click", exportCsv);
  $("grade").addEventListener("click", grade);
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
  kind: () => state.kind,
  refs: () => ({ ...state.refs }),
  exportCsv, exportLog,
  busy: () => state.busy,  // a step is in flight (pausing lets it land)
};

init().catch((e) => setStatus(`could not load the task catalog: ${e.message}`));
