// The attention explorer page: POST /api/translate, then draw the head view (lines between
// tokens, one colour per head), the model view (every layer x head as a small heat map),
// the enlarged heat map, the query-and-keys view (qk-view.js) and the entropy / distance table.
// Plain JavaScript, no libraries.
"use strict";

const KIND_NAMES = {encoder_self: "encoder self-attention", decoder_self: "decoder self-attention",
                    cross: "decoder-encoder (cross) attention"};
const HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                      "#bcbd22", "#7f7f7f", "#393b79", "#ad494a"];
// viridis at 9 evenly spaced points, interpolated linearly
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                 [92, 200, 99], [170, 220, 50], [253, 231, 37]];

const $ = (id) => document.getElementById(id);
const state = {id: 0, data: null, kind: "cross", layer: 0, head: 0, shown: null, hover: null, query: 1,
               vectors: {}, models: []};
// Exposed for tests and for measuring: click -> drawing time of the last translation.
window.explorer = {state, timings: null, draws: 0};

function headColour(h) { return HEAD_COLOURS[h % HEAD_COLOURS.length]; }

function viridis(t) {
  t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

// Tokens: SentencePiece marks a word start with U+2581; show it as a visible space marker.
function label(piece) { return piece.replace(/\u2581/g, "\u00b7") || "\u2205"; }

// (queries, keys) token lists of a kind: rows attend to columns.
function axes(kind) {
  const d = state.data;
  if (kind === "encoder_self") return [d.source_tokens, d.source_tokens];
  if (kind === "decoder_self") return [d.target_tokens, d.target_tokens];
  return [d.target_tokens, d.source_tokens];
}

function matrix(layer, head) { return state.data.attention[state.kind][layer][head]; }

// ------------------------------------------------------------------ URL state

function readUrl() {
  const p = new URLSearchParams(location.search);
  return {text: p.get("text") || "", direction: p.get("direction"), kind: p.get("kind"),
          layer: parseInt(p.get("layer"), 10), head: parseInt(p.get("head"), 10), beam: parseInt(p.get("beam"), 10),
          query: parseInt(p.get("query"), 10)};
}

function writeUrl() {
  if (!state.data) return;
  const p = new URLSearchParams({text: state.data.text, direction: state.data.direction, kind: state.kind,
                                 layer: state.layer + 1, head: state.head + 1, query: state.query + 1});
  if (state.data.beam > 1) p.set("beam", state.data.beam);
  const url = `${location.pathname}?${p}`;
  history.replaceState(null, "", url);
  $("share").href = url;
}

// ------------------------------------------------------------------ requests

function setStatus(message, isError) {
  $("status").textContent = message;
  $("status").classList.toggle("error", Boolean(isError));
}

async function loadModels() {
  const response = await fetch("/api/models");
  const info = await response.json();
  const select = $("direction");
  select.innerHTML = "";
  for (const m of info.models) {
    const option = document.createElement("option");
    option.value = m.direction;
    option.textContent = `${m.direction} (${m.layers} layers, ${m.heads} heads)`;
    select.appendChild(option);
  }
  state.models = info.models;
  $("text").maxLength = info.max_text_chars;
  $("beam").max = info.max_beam;
  return info;
}

async function translate(view) {
  const text = $("text").value.trim();
  if (!text) { setStatus("Type a sentence first.", true); $("text").focus(); return; }
  const t0 = performance.now();
  performance.mark("explorer-click");
  $("translate").disabled = true;
  setStatus("Translating\u2026");
  // the query-and-keys view's vectors come with the translation: the kind and layer to be shown
  view = view || {};
  const direction = $("direction").value;
  const model = state.models.find((m) => m.direction === direction) || {layers: 1};
  const kind = KIND_NAMES[view.kind] ? view.kind : state.kind;
  const layer = Math.min(view.layer >= 1 ? view.layer : state.layer + 1, model.layers);
  let data;
  try {
    const response = await fetch("/api/translate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text, direction, beam: parseInt($("beam").value, 10) || 1, vectors: {kind, layer}}),
    });
    data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  } catch (e) {
    setStatus(`Error: ${e.message}`, true);
    $("translate").disabled = false;
    return;
  }
  const t1 = performance.now();
  state.data = data;
  state.id += 1;
  state.vectors = {[`${data.vectors.kind}|${data.vectors.layer}`]: data.vectors};
  const layers = data.shapes.cross[0], heads = data.shapes.cross[1];
  state.kind = kind;
  state.layer = layer - 1;
  if (view.query >= 1) state.query = view.query - 1;
  state.head = view.head >= 1 && view.head <= heads ? view.head - 1 : Math.min(state.head, heads - 1);
  state.shown = new Array(heads).fill(true);
  setupControls(layers, heads);
  $("result").hidden = false;
  drawAll();
  performance.mark("explorer-drawn");
  performance.measure("explorer-click-to-drawing", "explorer-click", "explorer-drawn");
  const t2 = performance.now();
  window.explorer.timings = {clickToDrawingMs: t2 - t0, requestMs: t1 - t0, drawMs: t2 - t1,
                             serverSeconds: data.seconds};
  window.explorer.draws += 1;
  document.body.dataset.draws = window.explorer.draws;
  setStatus(`Done in ${Math.round(t2 - t0)} ms (model ${Math.round(data.seconds * 1000)} ms, ` +
            `drawing ${Math.round(t2 - t1)} ms).`);
  $("translate").disabled = false;
}

// ------------------------------------------------------------------ controls

function setupControls(layers, heads) {
  const fill = (select, n, name) => {
    select.innerHTML = "";
    for (let i = 0; i < n; i++) {
      const o = document.createElement("option");
      o.value = i;
      o.textContent = `${name} ${i + 1}`;
      select.appendChild(o);
    }
  };
  fill($("layer"), layers, "layer");
  fill($("head"), heads, "head");
  fill($("qk-head"), heads, "head");
  const toggles = $("head-toggles");
  toggles.querySelectorAll("label").forEach((l) => l.remove());
  for (let h = 0; h < heads; h++) {
    const l = document.createElement("label");
    l.innerHTML = `<input type="checkbox" checked data-head="${h}"> <span class="swatch" ` +
                  `style="background:${headColour(h)}"></span>head ${h + 1}`;
    l.querySelector("input").addEventListener("change", (e) => {
      state.shown[h] = e.target.checked;
      drawHeadView();
    });
    toggles.appendChild(l);
  }
  $("translation").textContent = state.data.translation;
  $("note").textContent = `Attention: ${state.data.attention_note}. Weights rounded to ${state.data.decimals} ` +
                          `decimals. Model: ${state.data.model.layers} layers, ${state.data.model.heads} heads, ` +
                          `d_model ${state.data.model.d_model}.`;
}

function syncControls() {
  $("kind").value = state.kind;
  $("layer").value = state.layer;
  $("head").value = state.head;
}

function drawAll() {
  syncControls();
  drawHeadView();
  drawModelView();
  drawDetail();
  drawQueryKeys();
  drawTable();
  writeUrl();
}

// ------------------------------------------------------------------ head view

const ROW = 22;

function tokenColumn(container, tokens, side) {
  container.innerHTML = "";
  tokens.forEach((t, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "token";
    b.dataset.side = side;
    b.dataset.index = i;
    b.innerHTML = `<span class="text"></span><span class="weight"></span>`;
    b.querySelector(".text").textContent = label(t);
    b.setAttribute("aria-label", `${side === "left" ? "query" : "key"} token ${i + 1}: ${t}`);
    const enter = () => { state.hover = {side, index: i}; drawHeadView(); };
    const leave = () => { state.hover = null; drawHeadView(); };
    b.addEventListener("mouseenter", enter);
    b.addEventListener("focus", enter);
    b.addEventListener("mouseleave", leave);
    b.addEventListener("blur", leave);
    container.appendChild(b);
  });
}

function drawHeadView() {
  if (!state.data) return;
  const [queries, keys] = axes(state.kind);
  const left = $("left-tokens"), right = $("right-tokens");
  const signature = `${state.id}|${state.kind}`;
  if (left.dataset.signature !== signature) {
    tokenColumn(left, queries, "left");
    tokenColumn(right, keys, "right");
    left.dataset.signature = signature;
  }
  const canvas = $("lines");
  const height = Math.max(queries.length, keys.length) * ROW;
  const scale = window.devicePixelRatio || 1;
  canvas.style.height = `${height}px`;
  canvas.style.width = "240px";
  canvas.width = 240 * scale;
  canvas.height = height * scale;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, 240, height);
  const layer = state.data.attention[state.kind][state.layer];
  const hover = state.hover;
  ctx.lineWidth = 2;
  layer.forEach((w, h) => {
    if (!state.shown[h]) return;
    ctx.strokeStyle = headColour(h);
    for (let q = 0; q < queries.length; q++) {
      if (hover && hover.side === "left" && hover.index !== q) continue;
      for (let k = 0; k < keys.length; k++) {
        if (hover && hover.side === "right" && hover.index !== k) continue;
        const weight = w[q][k];
        if (weight < 0.01) continue;
        ctx.globalAlpha = weight;
        ctx.beginPath();
        ctx.moveTo(0, q * ROW + ROW / 2);
        ctx.lineTo(240, k * ROW + ROW / 2);
        ctx.stroke();
      }
    }
  });
  ctx.globalAlpha = 1;
  // weights of the chosen head next to the tokens the hovered one attends to / is attended by
  const w = layer[state.head];
  left.querySelectorAll(".token").forEach((b, q) => {
    b.classList.toggle("active", Boolean(hover && hover.side === "left" && hover.index === q));
    b.classList.toggle("target-of", Boolean(hover && hover.side === "right"));
    b.querySelector(".weight").textContent = hover && hover.side === "right" ? w[q][hover.index].toFixed(3) : "";
  });
  right.querySelectorAll(".token").forEach((b, k) => {
    b.classList.toggle("active", Boolean(hover && hover.side === "right" && hover.index === k));
    b.classList.toggle("target-of", Boolean(hover && hover.side === "left"));
    b.querySelector(".weight").textContent = hover && hover.side === "left" ? w[hover.index][k].toFixed(3) : "";
  });
  if (hover) {
    const [q, k] = hover.side === "left" ? [queries[hover.index], null] : [null, keys[hover.index]];
    $("cell-info").textContent = q !== null
      ? `"${label(q)}" attends to (head ${state.head + 1}, layer ${state.layer + 1}): weights on the right`
      : `what attends to "${label(k)}" (head ${state.head + 1}, layer ${state.layer + 1}): weights on the left`;
  }
}

// ------------------------------------------------------------------ heat maps

function paintMap(canvas, m) {
  const rows = m.length, cols = m[0].length;
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  let max = 0;
  for (const row of m) for (const v of row) max = Math.max(max, v);
  max = max || 1;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const [R, G, B] = viridis(m[r][c] / max);
      const o = 4 * (r * cols + c);
      image.data[o] = R; image.data[o + 1] = G; image.data[o + 2] = B; image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function drawModelView() {
  const grid = $("model-view");
  const [layers, heads] = state.data.shapes[state.kind];
  grid.style.gridTemplateColumns = `max-content repeat(${heads}, minmax(24px, 72px))`;
  grid.innerHTML = "";
  grid.appendChild(document.createElement("span"));
  for (let h = 0; h < heads; h++) {
    const s = document.createElement("span");
    s.className = "axis";
    s.textContent = `head ${h + 1}`;
    grid.appendChild(s);
  }
  for (let l = 0; l < layers; l++) {
    const s = document.createElement("span");
    s.className = "axis";
    s.textContent = `layer ${l + 1}`;
    grid.appendChild(s);
    for (let h = 0; h < heads; h++) {
      const c = document.createElement("canvas");
      c.tabIndex = 0;
      c.setAttribute("role", "button");
      c.setAttribute("aria-label", `${KIND_NAMES[state.kind]}, layer ${l + 1}, head ${h + 1}: enlarge`);
      c.dataset.layer = l;
      c.dataset.head = h;
      c.classList.toggle("selected", l === state.layer && h === state.head);
      paintMap(c, matrix(l, h));
      const pick = (layer, head) => {
        state.layer = layer;
        state.head = head;
        drawAll();
        grid.querySelector(`canvas[data-layer="${layer}"][data-head="${head}"]`).focus();
      };
      c.addEventListener("click", () => pick(l, h));
      // Enter or Space picks this map; the arrow keys move through the grid and pick as they go
      const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
      c.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(l, h); }
        if (moves[e.key]) {
          e.preventDefault();
          const [dl, dh] = moves[e.key];
          pick(Math.min(layers - 1, Math.max(0, l + dl)), Math.min(heads - 1, Math.max(0, h + dh)));
        }
      });
      grid.appendChild(c);
    }
  }
}

const CELL = 22, MARGIN = 110;

function drawDetail() {
  const [queries, keys] = axes(state.kind);
  const m = matrix(state.layer, state.head);
  const canvas = $("detail");
  const width = MARGIN + keys.length * CELL + 10, height = MARGIN + queries.length * CELL + 30;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  const tile = document.createElement("canvas");
  paintMap(tile, m);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, MARGIN, MARGIN, keys.length * CELL, queries.length * CELL);
  ctx.fillStyle = "#1d1d1f";
  ctx.font = "12px ui-monospace, Menlo, Consolas, monospace";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  queries.forEach((t, i) => ctx.fillText(label(t), MARGIN - 6, MARGIN + i * CELL + CELL / 2));
  keys.forEach((t, j) => {
    ctx.save();
    ctx.translate(MARGIN + j * CELL + CELL / 2, MARGIN - 6);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(label(t), 0, 0);
    ctx.restore();
  });
  let max = 0;
  for (const row of m) for (const v of row) max = Math.max(max, v);
  ctx.textAlign = "left";
  ctx.fillText(`rows: queries, columns: keys; colour 0 (dark) .. ${max.toFixed(3)} (yellow)`, 6,
               MARGIN + queries.length * CELL + 16);
  $("detail-title").textContent = `${KIND_NAMES[state.kind]}, layer ${state.layer + 1}, head ${state.head + 1}`;
  canvas.setAttribute("aria-label", `heat map of ${$("detail-title").textContent}`);
  canvas.onmousemove = (e) => {
    const r = canvas.getBoundingClientRect();
    const x = (e.clientX - r.left) * canvas.width / r.width - MARGIN;
    const y = (e.clientY - r.top) * canvas.height / r.height - MARGIN;
    const q = Math.floor(y / CELL), k = Math.floor(x / CELL);
    if (q >= 0 && q < queries.length && k >= 0 && k < keys.length) {
      $("cell-info").textContent = `"${label(queries[q])}" \u2192 "${label(keys[k])}": ${m[q][k].toFixed(3)}`;
    }
  };
}

// ------------------------------------------------------------------ table

function drawTable() {
  const body = $("summary").querySelector("tbody");
  body.innerHTML = "";
  const rows = state.data.summary.filter((r) => r.kind === state.kind);
  const cell = (tr, text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); };
  const means = {};
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.classList.toggle("current", r.layer === state.layer + 1 && r.head === state.head + 1);
    [r.layer, r.head, r.entropy.toFixed(3), r.max_entropy.toFixed(3), r.distance.toFixed(2)].forEach((v) => cell(tr, v));
    body.appendChild(tr);
    (means[r.layer] = means[r.layer] || []).push(r);
  }
  for (const [layer, rs] of Object.entries(means)) {
    const tr = document.createElement("tr");
    tr.className = "mean";
    const mean = (key) => rs.reduce((s, r) => s + r[key], 0) / rs.length;
    [layer, "mean", mean("entropy").toFixed(3), "", mean("distance").toFixed(2)].forEach((v) => cell(tr, v));
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------ downloads

function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function fileStem() {
  const words = state.data.text.toLowerCase().match(/\w+/gu) || ["sentence"];
  return `${words.slice(0, 6).join("-")}_${state.kind}_layer${state.layer + 1}_head${state.head + 1}`;
}

// ------------------------------------------------------------------ start

async function start() {
  let info;
  try {
    info = await loadModels();
  } catch (e) {
    setStatus(`The server did not answer: ${e.message}`, true);
    return;
  }
  const view = readUrl();
  if (view.direction && info.models.some((m) => m.direction === view.direction)) $("direction").value = view.direction;
  if (view.beam >= 1) $("beam").value = view.beam;
  if (KIND_NAMES[view.kind]) state.kind = view.kind;
  setupQueryKeys();
  $("form").addEventListener("submit", (e) => { e.preventDefault(); translate(); });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); translate(); }
  });
  $("kind").addEventListener("change", () => { state.kind = $("kind").value; state.hover = null; drawAll(); });
  $("layer").addEventListener("change", () => { state.layer = +$("layer").value; drawAll(); });
  $("head").addEventListener("change", () => { state.head = +$("head").value; drawAll(); });
  $("download-png").addEventListener("click", () => {
    $("detail").toBlob((blob) => download(`${fileStem()}.png`, blob), "image/png");
  });
  $("download-json").addEventListener("click", () => {
    const d = state.data;
    const body = {text: d.text, direction: d.direction, beam: d.beam, translation: d.translation,
                  source_tokens: d.source_tokens, target_tokens: d.target_tokens, attention_note: d.attention_note,
                  decimals: d.decimals, attention: d.attention, summary: d.summary};
    download(`${fileStem().split("_")[0]}_attention.json`, new Blob([JSON.stringify(body)], {type: "application/json"}));
  });
  if (view.text) {
    $("text").value = view.text;
    await translate(view);
  } else {
    $("text").focus();
  }
}

start();
