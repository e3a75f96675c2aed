// The "Decoding" panel: why the model chose each word. One column per output step of the shown
// translation with the step's most likely next tokens as probability bars (the softmax of that
// step, "decoding.steps" of POST /api/translate with "alternatives"); clicking a candidate (or
// Enter / Space on it) forces the chosen tokens up to that step plus the candidate as the
// "prefix" and the rest is decoded again. With beam >= 2 the beam tree ("beam_tree"): every
// hypothesis the search kept, its parent, token, log-probability and length-penalised score,
// finished ones ranked, pruned branches faded, the numbers on hover (SVG <title>).

import {$, element, label, piecesText} from "./common.js";

const SPECIAL = /^<[^>]*>$/;  // <s>, </s>, <unk>: not text, so they cannot be forced as a prefix
const SVG = "http://www.w3.org/2000/svg";
const COLUMN = 96, ROW = 18, PAD = 12;

function percent(p) { return p < 0.0005 ? "<0.1%" : `${(100 * p).toFixed(p >= 0.1 ? 0 : 1)}%`; }

function candidateButton(step, candidate, rank, force) {
  const b = element("button", "candidate");
  b.type = "button";
  b.dataset.step = step.step;
  b.dataset.rank = rank;
  b.dataset.token = candidate.token;
  b.dataset.prob = candidate.prob;
  const chosen = candidate.id === step.id;
  b.classList.toggle("chosen", chosen);
  const bar = element("span", "bar");
  bar.style.width = `${Math.max(1, Math.round(100 * candidate.prob))}%`;
  b.append(bar, element("span", "tok", label(candidate.token)), element("span", "p", percent(candidate.prob)));
  const what = `step ${step.step + 1}, candidate ${rank}: ${candidate.token}, probability ${candidate.prob}`;
  if (chosen) {
    b.setAttribute("aria-current", "true");
    b.setAttribute("aria-label", `${what}, chosen${step.forced ? " (forced)" : ""}`);
  } else if (SPECIAL.test(candidate.token)) {
    b.setAttribute("aria-disabled", "true");  // not `disabled`: the arrow keys still reach it
    b.title = "a special token cannot be forced as text";
    b.setAttribute("aria-label", `${what}; cannot be forced`);
  } else {
    b.title = `force "${label(candidate.token)}" here and decode the rest again`;
    b.setAttribute("aria-label", `${what}; force it and decode the rest again`);
    b.addEventListener("click", () => force(step.step, candidate.token));
  }
  return b;  // a button: Enter and Space press it
}

function stepColumn(step, force) {
  const column = element("div", "step");
  column.dataset.step = step.step;
  column.classList.toggle("forced", step.forced);
  column.setAttribute("role", "group");
  column.setAttribute("aria-label", `step ${step.step + 1}: ${step.token} (rank ${step.rank}, probability ` +
                      `${step.prob}${step.forced ? ", forced" : ""})`);
  const head = element("div", "step-head", `${step.step + 1}${step.forced ? " \u2022 forced" : ""}`);
  column.appendChild(head);
  step.candidates.forEach((c, i) => column.appendChild(candidateButton(step, c, i + 1, force)));
  if (!step.candidates.some((c) => c.id === step.id)) {  // a forced or beam token outside the top k
    const b = candidateButton(step, {token: step.token, id: step.id, prob: step.prob}, step.rank, force);
    b.classList.add("outside");
    column.appendChild(b);
  }
  return column;
}

// ------------------------------------------------------------------ beam tree

function svg(tag, attributes, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// Leaves top to bottom (children by score, best first), a parent midway between its children.
function layout(tree) {
  const byId = new Map(tree.nodes.map((n) => [n.id, {...n, children: []}]));
  let root = null;
  for (const n of byId.values()) {
    if (n.parent === null) root = n; else if (byId.has(n.parent)) byId.get(n.parent).children.push(n);
  }
  let leaves = 0;
  const place = (n) => {
    n.children.sort((a, b) => b.score - a.score);
    if (!n.children.length) { n.y = leaves++ * ROW; return; }
    n.children.forEach(place);
    n.y = (n.children[0].y + n.children[n.children.length - 1].y) / 2;
  };
  place(root);
  for (const n of byId.values()) n.x = (n.step + 1) * COLUMN;
  return {byId, root, height: Math.max(1, leaves) * ROW};
}

function pathTo(byId, nodeId) {
  const ids = new Set();
  for (let n = byId.get(nodeId); n; n = byId.get(n.parent)) ids.add(n.id);
  return ids;
}

function drawTree(tree) {
  const {byId, height} = layout(tree);
  const steps = Math.max(...tree.nodes.map((n) => n.step)) + 2;
  const picture = svg("svg", {id: "beam-tree", width: steps * COLUMN + 2 * PAD, height: height + 2 * PAD,
                              role: "img", "aria-label": `beam tree: ${tree.nodes.length} hypotheses`});
  const g = svg("g", {transform: `translate(${PAD},${PAD + ROW / 2})`}, picture);
  const chosen = tree.finished.find((f) => f.chosen);
  const onChosen = chosen ? pathTo(byId, chosen.node) : new Set();
  const finishedAt = new Map(tree.finished.map((f) => [f.node, f]));
  for (const n of byId.values()) {
    if (n.parent === null || !byId.has(n.parent)) continue;
    const p = byId.get(n.parent), mid = (p.x + n.x) / 2;
    svg("path", {d: `M${p.x},${p.y} C${mid},${p.y} ${mid},${n.y} ${n.x},${n.y}`, "data-node": n.id,
                 class: `edge ${n.status}${onChosen.has(n.id) ? " chosen-path" : ""}`}, g);
  }
  for (const n of byId.values()) {
    const node = svg("g", {class: `node ${n.status}${onChosen.has(n.id) ? " chosen-path" : ""}`,
                           "data-node": n.id, transform: `translate(${n.x},${n.y})`}, g);
    svg("circle", {r: finishedAt.has(n.id) ? 5 : 3.5}, node);
    const text = svg("text", {x: 6, y: 4}, node);
    text.textContent = label(n.token);
    const rank = finishedAt.has(n.id) ? `, finished #${finishedAt.get(n.id).rank}` : "";
    svg("title", {}, node).textContent = `${n.token} (step ${n.step + 1}${rank}): log p ${n.logprob.toFixed(4)}, ` +
      `score ${n.score.toFixed(4)}, ${n.status}`;
  }
  return {picture, byId};
}

function drawBeamTree(tree) {
  const box = $("beam-tree-box");
  box.hidden = !tree;
  if (!tree) return;
  const finished = [...tree.finished].sort((a, b) => a.rank - b.rank);
  $("beam-tree-summary").textContent = `Beam tree: beam ${tree.beam}, ${tree.nodes.length} hypotheses, ` +
    `${finished.length} finished (length penalty \u03b1 = ${tree.alpha})`;
  const {picture, byId} = drawTree(tree);
  const list = $("beam-finished");
  list.innerHTML = "";
  const highlight = (ids) => picture.querySelectorAll("[data-node]").forEach((e) => {
    e.classList.toggle("highlight", Boolean(ids && ids.has(+e.dataset.node)));
  });
  for (const f of finished) {
    const li = element("li", f.chosen ? "hypothesis chosen" : "hypothesis");
    li.dataset.rank = f.rank;
    li.dataset.node = f.node;
    li.tabIndex = 0;  // focus shows its path in the tree, as hovering does
    li.append(element("span", "rank", `#${f.rank}`), element("span", "score", f.score.toFixed(4)),
              element("span", "text", f.text));
    if (f.chosen) li.append(element("span", "shown", "shown above"));
    li.setAttribute("aria-label", `hypothesis ${f.rank}, score ${f.score.toFixed(4)}: ${f.text}` +
                    `${f.chosen ? " (the translation shown)" : ""}`);
    const on = () => highlight(pathTo(byId, f.node)), off = () => highlight(null);
    li.addEventListener("mouseenter", on);
    li.addEventListener("focus", on);
    li.addEventListener("mouseleave", off);
    li.addEventListener("blur", off);
    list.appendChild(li);
  }
  const scroll = $("beam-tree-scroll");
  scroll.innerHTML = "";
  scroll.appendChild(picture);
}

// One Tab stop for all the candidates (the chosen one of column `first`, 0 unless given); the
// arrow keys move between them (up and down in a column, left and right to the same place in
// the next one). Returns the Tab stop.
function roving(container, first) {
  const columns = [...container.querySelectorAll(".step")].map((c) => [...c.querySelectorAll(".candidate")]);
  columns.flat().forEach((b) => { b.tabIndex = -1; });
  if (!columns.length) return null;
  const column = columns[Math.min(first || 0, columns.length - 1)];
  const start = column.find((b) => b.classList.contains("chosen")) || column[0];
  start.tabIndex = 0;
  const moves = {ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0]};
  columns.forEach((column, c) => column.forEach((b, r) => b.addEventListener("keydown", (e) => {
    if (!moves[e.key]) return;
    e.preventDefault();
    const nc = Math.min(columns.length - 1, Math.max(0, c + moves[e.key][0]));
    const next = columns[nc][Math.min(columns[nc].length - 1, Math.max(0, r + moves[e.key][1]))];
    columns.flat().forEach((x) => { x.tabIndex = -1; });
    next.tabIndex = 0;
    next.focus();
  })));
  return start;
}

// ------------------------------------------------------------------ the panel

// hooks.force(prefix text) asks for a new translation starting with that text.
// After a forced word the focus comes back to its column (the candidate pressed is redrawn).
export function createDecoding(hooks) {
  let forcedStep = null;

  function draw(data) {
    const decoding = data.decoding;
    const steps = $("decoding-steps");
    steps.innerHTML = "";
    $("decoding-panel").hidden = !decoding;
    if (!decoding) return;
    const chosen = decoding.steps.map((s) => s.token);
    const force = (step, token) => {
      forcedStep = step;
      hooks.force(piecesText([...chosen.slice(0, step), token]));
    };
    for (const step of decoding.steps) steps.appendChild(stepColumn(step, force));
    const stop = roving(steps, forcedStep);
    if (forcedStep !== null && stop) stop.focus();
    forcedStep = null;
    const forced = decoding.prefix_tokens.length > 0;
    $("decoding-forced").hidden = !forced;
    $("forced-text").textContent = piecesText(decoding.prefix_tokens);
    drawBeamTree(data.beam_tree);
  }

  // while a request runs, the candidates cannot be pressed again
  function busy(on) {
    $("decoding-panel").setAttribute("aria-busy", String(on));
    $("decoding-steps").classList.toggle("busy", on);
  }

  return {draw, busy};
}
