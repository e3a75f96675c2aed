// The "query and keys" view: the article's mantra for one head and one query token, left to right.
// "Compare the query with the keys" (q * k_j elementwise, summed: the dot product, divided by
// sqrt(depth), masked), "get weights for the values" (the softmax weights), "reweight the values
// and sum them" (w_j v_j and their sum, the head's output). The vectors, the mask, the weights and
// the head output are the model's (POST /api/translate with "vectors", through api.js, with the
// same text, beam and forced prefix as the shown translation); the page computes only the
// elementwise products, their sums, the division and the weighted sum of the values, and shows
// the model's head output under its own sum. createQueryKeys(state, hooks) returns the view; the
// state object is app.js's, passed in.

import * as api from "./api.js";
import {$, KIND_NAMES, axes, label} from "./common.js";

const QK_POSITIVE = [230, 97, 1], QK_NEGATIVE = [26, 115, 232];  // bertviz-like orange / blue

function maxAbs(arrays) {
  let m = 0;
  for (const a of arrays) for (const x of a) m = Math.max(m, Math.abs(x));
  return m || 1;
}

// A vector as a strip of coloured cells: blue negative, white 0, orange positive, |x| / scale.
function strip(values, scale, name) {
  const depth = values.length, cell = Math.max(3, Math.min(8, Math.floor(128 / depth)));
  const c = document.createElement("canvas");
  c.width = depth * cell;
  c.height = 14;
  c.className = "strip";
  const ctx = c.getContext("2d");
  values.forEach((x, d) => {
    const t = Math.min(1, Math.abs(x) / scale), end = x >= 0 ? QK_POSITIVE : QK_NEGATIVE;
    const rgb = end.map((e) => Math.round(255 + t * (e - 255)));
    ctx.fillStyle = `rgb(${rgb})`;
    ctx.fillRect(d * cell, 0, cell, 14);
  });
  const text = values.map((x) => x.toFixed(3)).join(" ");
  c.title = `${name}: ${text}`;
  c.dataset.values = JSON.stringify(values.map((x) => Number(x.toFixed(3))));
  c.setAttribute("role", "img");
  c.setAttribute("aria-label", `${name}: ${text}`);
  return c;
}

function cell(tr, content, className) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}


// Everything the table shows for head h, query i: the model's numbers and the page's sums.
function mantra(state, v, h, i) {
  const q = v.queries[h][i], keys = v.keys[h], values = v.values[h];
  const weights = state.data.attention[state.kind][state.layer][h][i];
  const products = keys.map((k) => k.map((x, d) => x * q[d]));
  const dots = products.map((p) => p.reduce((a, b) => a + b, 0));
  const root = Math.sqrt(v.depth);
  const weighted = values.map((vec, j) => vec.map((x) => x * weights[j]));
  const sum = q.map((_, d) => weighted.reduce((s, wv) => s + wv[d], 0));
  return {q, keys, values, weights, products, dots, root, scaled: dots.map((s) => s / root), weighted, sum,
          output: v.outputs[h][i], mask: v.mask[i]};
}

function drawSums(foot, m, scale) {
  foot.innerHTML = "";
  const diff = Math.max(...m.sum.map((x, d) => Math.abs(x - m.output[d])));
  const rows = [
    ["\u03a3 w\u2c7c v\u2c7c (summed here)", m.weights.reduce((a, b) => a + b, 0).toFixed(3), strip(m.sum, scale, "sum"),
     "qk-sum"],
    [`the model's head output (max |difference| ${diff.toFixed(3)}: rounding)`, "", strip(m.output, scale,
     "head output"), "qk-output"],
  ];
  for (const [text, weightSum, canvas, id] of rows) {
    const tr = document.createElement("tr");
    tr.id = id;
    cell(tr, text, "qk-token").colSpan = 6;
    cell(tr, weightSum, "num");
    cell(tr, "");
    cell(tr, canvas);
    foot.appendChild(tr);
  }
}

function drawTable(state, v) {
  const [queries, keys] = axes(state.data, state.kind);
  const h = state.head, i = state.query, m = mantra(state, v, h, i);
  const vecScale = maxAbs([m.q, ...m.keys]), prodScale = maxAbs(m.products), valScale = maxAbs(m.values);
  const outScale = maxAbs([...m.weighted, m.sum, m.output]);
  $("qk-title-detail").textContent = `${KIND_NAMES[state.kind]}, layer ${state.layer + 1}, head ${h + 1}, ` +
    `query ${i + 1} "${label(queries[i])}"; depth ${v.depth}, \u221a${v.depth} = ${m.root.toFixed(3)}`;
  $("qk-root").textContent = `\u00f7 \u221a${v.depth}`;
  const qRow = $("qk-query-row");
  qRow.innerHTML = "";
  cell(qRow, `query q: ${i + 1} "${label(queries[i])}"`, "qk-token");
  cell(qRow, strip(m.q, vecScale, "query q"));
  cell(qRow, `colours: \u00b1${vecScale.toFixed(2)} (q, k), \u00b1${prodScale.toFixed(2)} (q\u2299k), ` +
             `\u00b1${valScale.toFixed(2)} (v), \u00b1${outScale.toFixed(2)} (w v, sums)`, "qk-legend")
    .colSpan = 7;
  const body = $("qk-table").querySelector("tbody");
  body.innerHTML = "";
  keys.forEach((t, j) => {
    const tr = document.createElement("tr");
    tr.dataset.key = j;
    const masked = !m.mask[j];
    tr.classList.toggle("masked", masked);
    cell(tr, `${j + 1} ${label(t)}`, "qk-token");
    cell(tr, strip(m.keys[j], vecScale, `key ${j + 1}`));
    cell(tr, strip(m.products[j], prodScale, `q \u2299 k${j + 1}`));
    cell(tr, m.dots[j].toFixed(3), "num dot");
    cell(tr, m.scaled[j].toFixed(3), "num scaled");
    const why = state.kind === "decoder_self" && j > i ? "look-ahead" : "padding";
    cell(tr, masked ? `masked (${why}) \u2192 \u22121e9` : "", "mask");
    const wcell = cell(tr, "", "num weight");
    wcell.innerHTML = `<span class="bar" style="width:${Math.round(40 * m.weights[j])}px"></span>` +
                      `<span class="w">${m.weights[j].toFixed(3)}</span>`;
    cell(tr, strip(m.values[j], valScale, `value ${j + 1}`));
    cell(tr, strip(m.weighted[j], outScale, `w${j + 1} v${j + 1}`));
    tr.tabIndex = 0;  // Tab reaches every key, as hovering does
    tr.setAttribute("aria-label", `key ${j + 1} ${t}: q\u00b7k ${m.dots[j].toFixed(3)}, ` +
                    `${masked ? "masked" : `weight ${m.weights[j].toFixed(3)}`}`);
    for (const [on, off] of [["mouseenter", "mouseleave"], ["focus", "blur"]]) {
      tr.addEventListener(on, () => tr.classList.add("hl"));
      tr.addEventListener(off, () => tr.classList.remove("hl"));
    }
    body.appendChild(tr);
  });
  drawSums($("qk-table").querySelector("tfoot"), m, outScale);
}

function fillQueryOptions(state) {
  const [queries] = axes(state.data, state.kind);
  const select = $("qk-query");
  state.query = Math.min(Math.max(0, state.query), queries.length - 1);
  const signature = `${state.id}|${state.kind}`;
  if (select.dataset.signature !== signature) {
    select.innerHTML = "";
    queries.forEach((t, i) => {
      const o = document.createElement("option");
      o.value = i;
      o.textContent = `${i + 1}: ${label(t)}`;
      select.appendChild(o);
    });
    select.dataset.signature = signature;
  }
  select.value = state.query;
  $("qk-head").value = state.head;
}

// The view over app.js's state; hooks.redrawAll() redraws every view (a head change), hooks.writeUrl()
// records the query token in the address. A user's change is timed until it is drawn: the
// performance entry "explorer-qk-click-to-drawing" (detail.fetched: whether vectors were fetched).
export function createQueryKeys(state, hooks) {
  let pending = null, started = null, draws = 0;
  const key = () => `${state.kind}|${state.layer + 1}`;

  function draw() {
    if (!state.data) return;
    fillQueryOptions(state);
    const v = state.vectors[key()];
    if (!v) {
      $("qk-table").querySelector("tbody").innerHTML = "";
      $("qk-table").querySelector("tfoot").innerHTML = "";
      $("qk-status").textContent = "Loading this layer's vectors\u2026";
      requestVectors();
      return;
    }
    drawTable(state, v);
    $("qk-status").textContent = "";
    draws += 1;
    document.body.dataset.qkDraws = draws;
    if (started) {
      performance.measure("explorer-qk-click-to-drawing", {start: started.t, detail: {fetched: started.fetched}});
      started = null;
    }
  }

  // The vectors of the shown kind and layer: the shown translation's request again, with
  // "vectors"; an answer for a view that is no longer shown is kept for later but not drawn.
  async function requestVectors() {
    const wanted = key(), id = state.id;
    if (pending === `${id}|${wanted}`) return;
    pending = `${id}|${wanted}`;
    if (started) started.fetched = true;
    try {
      const vectors = {kind: state.kind, layer: state.layer + 1};
      const answer = await api.translate({...state.request, alternatives: 0, beamTree: false, vectors});
      if (id !== state.id) return;
      state.vectors[`${answer.vectors.kind}|${answer.vectors.layer}`] = answer.vectors;
      if (key() === wanted) draw();
    } catch (e) {
      $("qk-status").textContent = `Error: ${e.message}`;
    } finally {
      if (pending === `${id}|${wanted}`) pending = null;
    }
  }

  // Start timing a user's change of the view (head, query, kind or layer) until it is drawn.
  const click = () => { started = {t: performance.now(), fetched: false}; };
  $("qk-query").addEventListener("change", () => {
    click();
    state.query = +$("qk-query").value;
    draw();
    hooks.writeUrl();
  });
  $("qk-head").addEventListener("change", () => { click(); state.head = +$("qk-head").value; hooks.redrawAll(); });
  for (const id of ["kind", "layer", "head"]) $(id).addEventListener("change", click, true);
  return {draw};
}
