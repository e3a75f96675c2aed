// The LSTM circuit page: POST /api/lstm/run, then show one time step of the block in both drawings
// (diagram.js), forward values or backward errors, the chain rule's routes for one error, the
// lag plot and the gradient table. Plain ES modules, no libraries.

import {colour, drawDiagram, drawLag} from "./diagram.js";

const $ = (id) => document.getElementById(id);
const state = {data: null, t: 0, view: "forward", diagrams: [], route: "c", timer: null};
const LAG_COLOURS = {"this model": "#d62728", "V (forget gate on)": "#1f77b4", "NFG (forget gate off)": "#2ca02c"};
const DELTA = "\u03b4";

// The page's one request helper: JSON in, JSON out; an error answer becomes an Error with its message.
async function request(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

const fmt = (v) => (v === null || v === undefined ? "\u2013" : Number(v).toPrecision(4));
const vec = (values) => `[${values.map(fmt).join(", ")}]`;

// The vector on `wire` at step t in the current view (null where the view has none).
function wireValue(wire, t) {
  const d = state.data;
  if (wire === "x") return [d.x[t]];
  if (state.view === "forward") return d.forward[wire] ? d.forward[wire][t] : null;
  const back = d.backward;
  if (wire === "c_prev") return t > 0 ? back.c[t - 1] : null;
  if (wire === "y_prev") return t > 0 ? back.y[t - 1] : null;
  return back[wire] ? back[wire][t] : null;
}

// One colour scale per wire: its largest |value| over all steps of the current view.
function scaleOf(wire) {
  let m = 0;
  for (let t = 0; t < state.data.x.length; t++) {
    for (const v of wireValue(wire, t) || []) m = Math.max(m, Math.abs(v));
  }
  return m || 1;
}

function label(wire) {
  return state.view === "backward" && wire !== "x" ? `${DELTA}${wire}` : wire;
}

function paint() {
  const {t} = state;
  for (const {cells} of state.diagrams) {
    for (const [wire, rects] of Object.entries(cells)) {
      const values = wireValue(wire, t), scale = scaleOf(wire);
      rects.forEach((rect, u) => {
        const v = values ? values[u] : null;
        rect.setAttribute("fill", colour(v, scale));
        rect.setAttribute("data-value", v === null || v === undefined ? "" : String(v));
        rect.parentNode.classList.toggle("absent", !values);
      });
    }
  }
  document.body.classList.toggle("backward", state.view === "backward");
  for (const text of document.querySelectorAll(".slot-label")) {
    const slot = text.parentNode, shown = !slot.classList.contains("absent");
    const delta = state.view === "backward" && slot.dataset.wire !== "x" && shown;
    text.textContent = (delta ? DELTA : "") + text.dataset.label;
  }
  $("time-label").textContent = `t = ${t + 1} of ${state.data.x.length}`;
  [...$("inputs").children].forEach((cell, k) => cell.classList.toggle("current", k === t));
  showRoutes();
}

// Tooltip with a wire's numbers, on hover and on keyboard focus.
function showTip(event) {
  const slot = event.target.closest(".slot");
  if (!slot || !state.data) return;
  const wire = slot.dataset.wire, values = wireValue(wire, state.t);
  const tip = $("tip");
  tip.textContent = `${label(wire)}(t=${state.t + 1}) = ${values ? vec(values) : "not in this variant or view"}`;
  const box = slot.getBoundingClientRect();
  tip.style.left = `${window.scrollX + box.left}px`;
  tip.style.top = `${window.scrollY + box.bottom + 4}px`;
  tip.hidden = false;
}

function hideTip() { $("tip").hidden = true; }

// ---------------------------------------------------------------- the chain rule's routes

const add = (a, b) => a.map((v, k) => v + b[k]);
const mul = (a, b) => a.map((v, k) => v * b[k]);
const sub = (a, b) => a.map((v, k) => v - b[k]);

// [label, formula, vector] for each route by which the error of `name` at step t reaches J.
function routes(name, t) {
  const d = state.data, F = d.forward, Bk = d.backward, P = d.parameters, T = d.x.length, n = d.units;
  const zero = Array(n).fill(0), next = t + 1 < T;
  const hPrime = F.h_c[t].map((h) => (d.flags.output_activation === "tanh" ? 1 - h * h : 1));
  const out = [];
  if (name === "y") {
    const direct = t === T - 1 ? P.readout_w.map((w) => w * (d.probability - d.label)) : zero;
    out.push(["J(t) directly", "\u2202J(t)/\u2202y(t)", direct]);
    if (next) {
      const stacked = d.blocks.flatMap((b) => Bk[{z: "z_bar", in: "i_bar", for: "f_bar", out: "o_bar"}[b]][t + 1]);
      const rec = P.R.map((row) => row.reduce((s, r, k) => s + r * stacked[k], 0));
      out.push(["the gates and block input of t+1", "R\u1d40 [\u03b4z\u0304, \u03b4\u012b, \u03b4f\u0304, \u03b4o\u0304](t+1)", rec]);
    }
  } else if (name === "c") {
    out.push(["y(t) through h", "\u03b4y \u2299 o \u2299 h'(c)", mul(mul(Bk.y[t], F.o[t]), hPrime)]);
    if (P.p_out) out.push(["output gate peephole", "p_o \u2299 \u03b4o\u0304(t)", mul(P.p_out, Bk.o_bar[t])]);
    if (next) {
      out.push(["c(t+1) along the highway", "\u03b4c(t+1) \u2299 f(t+1)", mul(Bk.c[t + 1], F.f[t + 1])]);
      if (P.p_in) out.push(["input gate peephole of t+1", "p_i \u2299 \u03b4\u012b(t+1)", mul(P.p_in, Bk.i_bar[t + 1])]);
      if (P.p_for) out.push(["forget gate peephole of t+1", "p_f \u2299 \u03b4f\u0304(t+1)", mul(P.p_for, Bk.f_bar[t + 1])]);
    }
  } else if (name === "o" && Bk.o) {
    out.push(["y(t) = o \u2299 h(c)", "\u03b4y \u2299 h(c)", mul(Bk.y[t], F.h_c[t])]);
  } else if (name === "f" && Bk.f) {
    out.push(["c(t) = z\u2299i + c(t\u22121)\u2299f", "\u03b4c \u2299 c(t\u22121)", mul(Bk.c[t], F.c_prev[t])]);
  } else if (name === "i" && Bk.i) {
    const coupled = d.flags.coupled_gates;
    out.push([coupled ? "c(t) = z\u2299i + c(t\u22121)\u2299(1\u2212i)" : "c(t) = z\u2299i + c(t\u22121)\u2299f",
              coupled ? "\u03b4c \u2299 (z \u2212 c(t\u22121))" : "\u03b4c \u2299 z",
              mul(Bk.c[t], coupled ? sub(F.z[t], F.c_prev[t]) : F.z[t])]);
  } else if (name === "z") {
    out.push(["c(t) = z\u2299i + ...", "\u03b4c \u2299 i", mul(Bk.c[t], F.i[t])]);
  }
  const gates = d.blocks.filter((b) => b !== "z"), block = {o: "out", f: "for", i: "in"}[name];
  if (d.flags.full_gate_recurrence && next && gates.includes(block) && Bk[name]) {
    // FGR: every gate of t+1 also reads this step's gate activations through R_gates
    const stacked = gates.flatMap((b) => Bk[{in: "i_bar", for: "f_bar", out: "o_bar"}[b]][t + 1]);
    const all = P.R_gates.map((row) => row.reduce((s, r, k) => s + r * stacked[k], 0));
    const k = gates.indexOf(block) * n;
    out.push(["the gates of t+1 (full gate recurrence)", "R_gates\u1d40 \u03b4gates\u0304(t+1)", all.slice(k, k + n)]);
  }
  return out;
}

function showRoutes() {
  const name = state.route, t = state.t, box = $("routes"), d = state.data;
  for (const {paths} of state.diagrams) {
    for (const p of paths) {
      p.classList.toggle("route", state.view === "backward" && p.dataset.routes.split(" ").includes(name));
      p.classList.toggle("absent", Boolean(p.dataset.needs) && !d.forward[p.dataset.needs]);
    }
  }
  const list = routes(name, t);
  if (!d.backward[name]) {
    box.innerHTML = `<p class="note">${d.variant} has no ${name} to differentiate (the gate is the constant 1` +
      `${d.flags.coupled_gates ? " or 1 \u2212 i" : ""}).</p>`;
    return;
  }
  const total = list.map((r) => r[2]).reduce(add, Array(d.units).fill(0));
  const error = Math.max(...total.map((v, k) => Math.abs(v - d.backward[name][t][k])));
  const rows = list.map(([what, formula, v]) =>
    `<tr><td>${what}</td><td>${formula}</td><td class="num">${vec(v)}</td></tr>`).join("");
  box.innerHTML = `<p class="note">${DELTA}${name}(t=${t + 1}) is the sum over every route from ${name}(t) to J ` +
    `(article 04); the routes are purple in the backward view.</p><table><thead><tr><th>route</th><th>term</th>` +
    `<th>value</th></tr></thead><tbody>${rows}<tr class="sum"><td>sum</td><td></td><td class="num">${vec(total)}` +
    `</td></tr><tr><td>${DELTA}${name} from lstm/bptt.py</td><td></td><td class="num" id="route-delta">` +
    `${vec(d.backward[name][t])}</td></tr></tbody></table><p class="hint">max |sum \u2212 ${DELTA}${name}| = ` +
    `${error.toExponential(2)}</p>`;
}

// ---------------------------------------------------------------- run, tables, plot

function showGradients() {
  const d = state.data;
  $("grads").tBodies[0].innerHTML = Object.entries(d.gradients).map(([name, g]) => {
    const rel = d.autodiff[name];
    const flat = [g.values].flat(3).map(fmt).join(" ");
    return `<tr data-param="${name}"><td>${name}</td><td>${g.shape.join("\u00d7") || "scalar"}</td>` +
      `<td class="num">${fmt(g.norm)}</td><td class="num rel">${rel.toExponential(2)}</td>` +
      `<td class="values">${flat}</td></tr>`;
  }).join("");
}

function show(data) {
  state.data = data;
  state.t = Math.min(state.t, data.x.length - 1);
  state.diagrams = ["circuit", "odyssey"].map((name) => drawDiagram($(name), name, data.units));
  $("time").max = data.x.length;
  $("time").value = state.t + 1;
  $("inputs").replaceChildren(...data.x.map((v, k) => {
    const cell = document.createElement("span");
    cell.className = "input-cell";
    cell.textContent = fmt(v);
    cell.title = `x(${k + 1}) = ${v}`;
    return cell;
  }));
  $("summary").textContent = `${data.variant}: P(first number positive) = ${data.probability.toFixed(4)}, ` +
    `label ${data.label}, loss J = ${data.loss.toExponential(3)}. Model: ${data.units} cells, trained ` +
    `${data.model.trained_steps} Adam steps on length-${data.model.trained_length} sequences, accuracy ` +
    `${data.model.accuracy.toFixed(3)} on 1024 fresh ones.`;
  const comparison = data.forget_gate_comparison;
  drawLag($("lag"), {"this model": data.dc_norm_by_lag, "V (forget gate on)": comparison.V,
                     "NFG (forget gate off)": comparison.NFG}, LAG_COLOURS);
  showGradients();
  paint();
  document.body.dataset.variant = data.variant;
  document.body.dataset.ready = String(Number(document.body.dataset.ready || 0) + 1);
}

function sequenceOfForm() {
  const typed = $("numbers").value.trim();
  if (!typed) return $("sequence").value;
  return typed.split(/[\s,;]+/).map((s) => (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s) ? Number(s) : s));
}

async function run(event) {
  if (event) event.preventDefault();
  $("run").disabled = true;
  status("running\u2026");
  try {
    show(await request("/api/lstm/run", {variant: $("variant").value, sequence: sequenceOfForm()}));
    status("");
  } catch (e) {
    status(e.message, true);
  } finally {
    $("run").disabled = false;
  }
}

function setTime(t) {
  state.t = t;
  $("time").value = t + 1;
  paint();
}

function play() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; $("play").textContent = "Play"; return; }
  const T = state.data.x.length, backward = state.view === "backward";
  let t = backward ? T - 1 : 0;  // errors flow from the last step back to the first
  $("play").textContent = "Stop";
  setTime(t);
  state.timer = setInterval(() => {
    t += backward ? -1 : 1;
    if (t < 0 || t >= T) { play(); return; }
    setTime(t);
  }, 700);
}

async function start() {
  const limits = await request("/api/lstm/models");
  $("variant").replaceChildren(...limits.variants.map((v) => new Option(v, v)));
  $("sequence").replaceChildren(...Object.keys(limits.sequences).map((s) => new Option(s, s)));
  $("limits").textContent = `Up to ${limits.max_length} numbers, each within \u00b1${limits.max_abs_input}; ` +
    `the models (${limits.units} cells) were trained on ${limits.trained_length} steps.`;
  $("form").addEventListener("submit", run);
  $("variant").addEventListener("change", () => run());
  $("sequence").addEventListener("change", () => { $("numbers").value = ""; run(); });
  $("time").addEventListener("input", () => setTime(Number($("time").value) - 1));
  $("play").addEventListener("click", () => state.data && play());
  $("route-var").addEventListener("change", () => { state.route = $("route-var").value; if (state.data) showRoutes(); });
  for (const radio of document.querySelectorAll("input[name=view]")) {
    radio.addEventListener("change", () => { state.view = radio.value; if (state.data) paint(); });
  }
  for (const svg of [$("circuit"), $("odyssey")]) {
    svg.addEventListener("mouseover", showTip);
    svg.addEventListener("focusin", showTip);
    svg.addEventListener("mouseout", hideTip);
    svg.addEventListener("focusout", hideTip);
  }
  await run();
}

start().catch((e) => status(e.message, true));
