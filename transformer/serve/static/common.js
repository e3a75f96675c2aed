// Helpers every view of the explorer page uses: names, colours, token labels, the token axes of an
// attention kind and the heat-map painter. Pure functions of their arguments: no state here.

export const KIND_NAMES = {encoder_self: "encoder self-attention", decoder_self: "decoder self-attention",
                           cross: "decoder-encoder (cross) attention"};
const HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                      "#bcbd22", "#7f7f7f", "#393b79", "#ad494a"];
// viridis at 9 evenly spaced points, interpolated linearly
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                 [92, 200, 99], [170, 220, 50], [253, 231, 37]];

export const $ = (id) => document.getElementById(id);

export function headColour(h) { return HEAD_COLOURS[h % HEAD_COLOURS.length]; }

export function viridis(t) {
  t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

// Tokens: SentencePiece marks a word start with U+2581; show it as a visible space marker.
export function label(piece) { return piece.replace(/\u2581/g, "\u00b7") || "\u2205"; }

// The text of SentencePiece pieces: U+2581 is a space, the first one dropped.
export function piecesText(pieces) { return pieces.join("").replace(/\u2581/g, " ").trim(); }

// (queries, keys) token lists of a kind of an answer: rows attend to columns.
export function axes(data, kind) {
  if (kind === "encoder_self") return [data.source_tokens, data.source_tokens];
  if (kind === "decoder_self") return [data.target_tokens, data.target_tokens];
  return [data.target_tokens, data.source_tokens];
}

// One pixel per weight, viridis scaled to the matrix's maximum.
export function paintMap(canvas, m) {
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

// An element with a class and text content.
export function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}
