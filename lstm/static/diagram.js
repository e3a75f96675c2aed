// The two drawings of one LSTM step (article 03): the "electronic circuit" and the "Space Odyssey"
// form, plus the log-scale plot of ||dJ/dc(k)|| against the lag. Each wire carries a group of
// coloured cells, one per unit; circuit.js fills them with the forward values or the errors.

const SVG = "http://www.w3.org/2000/svg";

export function el(name, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// Wires of the electronic circuit: [id, path, errors whose chain-rule routes run along it, dashed
// (a peephole), the forward value without which the wire is absent (a variant without that gate)].
const CIRCUIT_PATHS = [
  ["hw_in", "M20 60 H214", ["f"]],
  ["hw_mid", "M246 60 H384", ["f"]],
  ["hw_out", "M416 60 H740", ["c", "c_next"]],
  ["f_wire", "M230 211 V76", ["f"], false, "f_bar"],
  ["f_sum", "M230 284 V239", [], false, "f_bar"],
  ["z_wire", "M330 211 V160 H384", ["z"]],
  ["z_sum", "M330 284 V239", []],
  ["i_wire", "M450 211 V160 H416", ["i"], false, "i_bar"],
  ["i_sum", "M450 284 V239", [], false, "i_bar"],
  ["zi_wire", "M400 144 V76", ["z", "i"]],
  ["h_in", "M540 60 V116", ["c"]],
  ["h_out", "M540 144 V184", ["c"]],
  ["o_wire", "M620 226 V200 H556", ["o"], false, "o_bar"],
  ["o_sum", "M620 284 V254", [], false, "o_bar"],
  ["y_out", "M556 200 H740", ["y", "c", "o"]],
  ["peep_i", "M130 60 V340 H450 V316", [], true, "peep_i"],
  ["peep_f", "M130 60 V340 H230 V316", [], true, "peep_f"],
  ["peep_o", "M690 60 V300 H636", ["c"], true, "peep_o"],
  ["bus", "M20 395 H620 M230 395 V316 M330 395 V316 M450 395 V316 M620 395 V316", []],
];

// Nodes: [kind, x, y, text]; kind "op" is a circle (x, +, sum), "act" a box (sigma, g, h).
const CIRCUIT_NODES = [
  ["op", 230, 60, "\u00d7"], ["op", 400, 60, "+"], ["op", 400, 160, "\u00d7"], ["op", 540, 200, "\u00d7"],
  ["act", 230, 225, "\u03c3"], ["act", 330, 225, "g"], ["act", 450, 225, "\u03c3"], ["act", 620, 240, "\u03c3"],
  ["act", 540, 130, "h"],
  ["op", 230, 300, "\u03a3"], ["op", 330, 300, "\u03a3"], ["op", 450, 300, "\u03a3"], ["op", 620, 300, "\u03a3"],
];

// Cell groups: [wire, x, y, label]; (x, y) is the top-left of the first cell.
const CIRCUIT_SLOTS = [
  ["c_prev", 24, 80, "c(t\u22121)"], ["c", 600, 26, "c(t)"], ["f", 240, 110, "f"], ["z", 276, 176, "z"],
  ["i", 462, 176, "i"], ["o", 562, 216, "o"], ["h_c", 552, 146, "h(c)"], ["y", 698, 176, "y(t)"],
  ["f_bar", 160, 256, "f\u0304"], ["z_bar", 338, 256, "z\u0304"], ["i_bar", 462, 256, "\u012b"],
  ["o_bar", 664, 256, "o\u0304"], ["peep_f", 144, 358, "p_f\u2299c(t\u22121)"],
  ["peep_i", 352, 358, "p_i\u2299c(t\u22121)"], ["peep_o", 700, 126, "p_o\u2299c(t)"],
  ["x", 24, 403, "x(t)"], ["y_prev", 90, 403, "y(t\u22121)"],
];

const ODYSSEY_PATHS = [
  ["o_z", "M260 360 V318", ["z"]], ["o_zi", "M260 290 V236", ["z", "i"]],
  ["o_i", "M146 296 H244", ["i"], false, "i_bar"], ["o_loop", "M226 188 C170 150 170 250 226 214", ["c", "f"]],
  ["o_f", "M96 200 H166", ["f"], false, "f_bar"], ["o_h", "M260 166 V134", ["c"]],
  ["o_hc", "M260 106 V86 H314", ["c"]], ["o_o", "M400 106 V36 H330 V54", ["o"], false, "o_bar"],
  ["o_y", "M346 70 H500", ["y", "c", "o"]],
  ["o_pi", "M236 222 L146 296", [], true, "peep_i"], ["o_pf", "M226 200 L96 200", [], true, "peep_f"],
  ["o_po", "M292 190 L400 134", ["c"], true, "peep_o"],
  ["o_in", "M20 415 H500 M260 415 V402 M130 415 V310 M80 415 V214 M400 415 V134", []],
];

const ODYSSEY_NODES = [
  ["cell", 260, 200, "c"], ["act", 260, 374, "g"], ["act", 130, 296, "\u03c3"], ["act", 80, 200, "\u03c3"],
  ["act", 400, 120, "\u03c3"], ["act", 260, 120, "h"], ["op", 260, 304, "\u00d7"], ["op", 180, 200, "\u00d7"],
  ["op", 330, 70, "\u00d7"],
];

const ODYSSEY_SLOTS = [
  ["z", 272, 326, "z"], ["z_bar", 276, 380, "z\u0304"], ["i", 150, 318, "i"], ["i_bar", 96, 336, "\u012b"],
  ["f", 20, 150, "f"], ["f_bar", 20, 232, "f\u0304"], ["c", 300, 216, "c(t)"], ["c_prev", 300, 256, "c(t\u22121)"],
  ["o", 420, 90, "o"], ["o_bar", 420, 146, "o\u0304"], ["h_c", 194, 92, "h(c)"], ["y", 440, 30, "y(t)"],
];

// The article's "two ways" to draw the block, as data: paths, nodes and cell groups.
export const DIAGRAMS = {
  circuit: {paths: CIRCUIT_PATHS, nodes: CIRCUIT_NODES, slots: CIRCUIT_SLOTS},
  odyssey: {paths: ODYSSEY_PATHS, nodes: ODYSSEY_NODES, slots: ODYSSEY_SLOTS},
};

const CELL = 15;

function markers(svg) {
  const defs = el("defs", {}, svg);
  for (const [id, colour] of [["fwd", "#555"], ["back", "#7b2fbf"]]) {
    const m = el("marker", {id: `arrow-${id}-${svg.id}`, viewBox: "0 0 10 10", refX: "9", refY: "5",
                            markerWidth: "9", markerHeight: "9", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0 0 L10 5 L0 10 z", fill: colour}, m);
  }
}

// Draw one diagram into `svg` for `units` cells per wire; returns {cells: {wire: [rect]}, paths}.
export function drawDiagram(svg, name, units) {
  svg.replaceChildren();
  markers(svg);
  const spec = DIAGRAMS[name], paths = [];
  for (const [id, d, routes, dashed, needs] of spec.paths) {
    const p = el("path", {d, id: `${svg.id}-${id}`, class: `wire${dashed ? " peep" : ""}`,
                          "data-routes": routes.join(" "), "data-needs": needs || ""}, svg);
    paths.push(p);
  }
  for (const [kind, x, y, text] of spec.nodes) {
    const g = el("g", {class: `node ${kind}`}, svg);
    if (kind === "act") el("rect", {x: x - 16, y: y - 14, width: 32, height: 28, rx: 5}, g);
    else el("circle", {cx: x, cy: y, r: kind === "cell" ? 34 : 16}, g);
    el("text", {x, y: y + 5, "text-anchor": "middle"}, g, text);
  }
  const cells = {};
  for (const [wire, x, y, text] of spec.slots) {
    const n = wire === "x" ? 1 : units;
    const g = el("g", {class: "slot", tabindex: "0", "data-wire": wire, "aria-label": text}, svg);
    el("text", {x, y: y - 3, class: "slot-label", "data-label": text}, g, text);
    cells[wire] = [];
    for (let u = 0; u < n; u++) {
      cells[wire].push(el("rect", {x: x + u * CELL, y, width: CELL - 1, height: CELL - 1, class: "cell",
                                   "data-wire": wire, "data-unit": u}, g));
    }
  }
  return {cells, paths, svg};
}

// Diverging colour: blue (negative) - white - red (positive), |v| / scale clipped to 1.
export function colour(v, scale) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "#e8e8e8";
  const t = Math.min(1, Math.abs(v) / (scale || 1));
  const [r, g, b] = v >= 0 ? [214, 39, 40] : [31, 119, 180];
  const mix = (c) => Math.round(255 + t * (c - 255));
  return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
}

// The lag plot: one polyline per series {name: values by lag}, log scale.
export function drawLag(svg, series, colours) {
  svg.replaceChildren();
  const W = 460, H = 260, L = 56, R = 12, T = 14, B = 34;
  const all = Object.values(series).flat().filter((v) => v > 0);
  const n = Math.max(...Object.values(series).map((s) => s.length));
  if (!all.length) return;
  let lo = Math.floor(Math.log10(Math.min(...all))), hi = Math.ceil(Math.log10(Math.max(...all)));
  if (hi === lo) hi = lo + 1;
  const sx = (k) => L + (n > 1 ? (k / (n - 1)) * (W - L - R) : 0);
  const sy = (v) => T + ((hi - Math.log10(v)) / (hi - lo)) * (H - T - B);
  el("path", {d: `M${L} ${T} V${H - B} H${W - R}`, class: "axis"}, svg);
  for (let e = lo; e <= hi; e++) {
    el("line", {x1: L, x2: W - R, y1: sy(10 ** e), y2: sy(10 ** e), class: "grid"}, svg);
    el("text", {x: L - 6, y: sy(10 ** e) + 4, "text-anchor": "end", class: "tick"}, svg, `1e${e}`);
  }
  for (let k = 0; k < n; k += Math.max(1, Math.ceil(n / 10))) {
    el("text", {x: sx(k), y: H - B + 16, "text-anchor": "middle", class: "tick"}, svg, String(k));
  }
  el("text", {x: (L + W) / 2, y: H - 4, "text-anchor": "middle", class: "tick"}, svg, "lag T \u2212 k");
  let row = 0;
  for (const [name, values] of Object.entries(series)) {
    const pts = values.map((v, k) => (v > 0 ? `${sx(k)},${sy(v)}` : null)).filter(Boolean);
    el("polyline", {points: pts.join(" "), fill: "none", stroke: colours[name], "stroke-width": row ? 2 : 4,
                    "stroke-dasharray": row ? "" : "2 5", "stroke-linecap": "round",
                    "data-series": name}, svg);
    el("text", {x: W - R - 4, y: T + 14 + 14 * row++, "text-anchor": "end", fill: colours[name],
                class: "tick"}, svg, name);
  }
}
