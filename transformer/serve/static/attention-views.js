// The attention views of one answer: the head view (lines between tokens, one colour per head),
// the model view (every layer x head as a small heat map), the enlarged heat map and the entropy /
// distance table. Each function draws from the page's state object, which app.js owns and passes in.

import {$, KIND_NAMES, axes, headColour, label, paintMap} from "./common.js";

function matrix(state, layer, head) { return state.data.attention[state.kind][layer][head]; }

// ------------------------------------------------------------------ head view

const ROW = 22;

export function setupHeadToggles(state, heads) {
  const toggles = $("head-toggles");
  toggles.querySelectorAll("label").forEach((l) => l.remove());
  for (let h = 0; h < heads; h++) {
    const l = document.createElement("label");
    l.innerHTML = `<input type="checkbox" checked data-head="${h}"> <span class="swatch" ` +
                  `style="background:${headColour(h)}"></span>head ${h + 1}`;
    l.querySelector("input").addEventListener("change", (e) => {
      state.shown[h] = e.target.checked;
      drawHeadView(state);
    });
    toggles.appendChild(l);
  }
}

function tokenColumn(state, container, tokens, side) {
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
    const enter = () => { state.hover = {side, index: i}; drawHeadView(state); };
    const leave = () => { state.hover = null; drawHeadView(state); };
    b.addEventListener("mouseenter", enter);
    b.addEventListener("focus", enter);
    b.addEventListener("mouseleave", leave);
    b.addEventListener("blur", leave);
    container.appendChild(b);
  });
}

export function drawHeadView(state) {
  if (!state.data) return;
  const [queries, keys] = axes(state.data, state.kind);
  const left = $("left-tokens"), right = $("right-tokens");
  const signature = `${state.id}|${state.kind}`;
  if (left.dataset.signature !== signature) {
    tokenColumn(state, left, queries, "left");
    tokenColumn(state, right, keys, "right");
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

// Every layer x head of the shown kind; pick(layer, head) is called on a click, Enter, Space or an arrow key.
export function drawModelView(state, pick) {
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
  const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
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
      paintMap(c, matrix(state, l, h));
      c.addEventListener("click", () => pick(l, h));
      // Enter or Space picks this map; the arrow keys move through the grid and pick as they go
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

export function drawDetail(state) {
  const [queries, keys] = axes(state.data, state.kind);
  const m = matrix(state, state.layer, state.head);
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

export function drawTable(state) {
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
