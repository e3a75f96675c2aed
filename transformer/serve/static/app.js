// The attention explorer page: translate a sentence (api.js), then draw the decoding panel
// (decoding.js), the head view, the model view, the enlarged heat map and the entropy / distance
// table (attention-views.js) and the query-and-keys view (qk-view.js). ES modules, no libraries,
// no build step. The page's state lives in this module and is passed to the views; nothing is
// put on `window`. Each translation is timed from click to drawing as the performance entry
// "explorer-click-to-drawing" (detail: request and drawing milliseconds, the model's seconds),
// and document.body's data-draws counts the translations drawn.

import * as api from "./api.js";
import {$, KIND_NAMES} from "./common.js";
import {drawDetail, drawHeadView, drawModelView, drawTable, setupHeadToggles} from "./attention-views.js";
import {createDecoding} from "./decoding.js";
import {createQueryKeys} from "./qk-view.js";

const DEFAULT_ALTERNATIVES = 5;
// request: what the shown answer was asked with (text, direction, beam, prefix), for the views
// that ask again (the vectors of another layer, a forced word)
const state = {id: 0, data: null, request: null, kind: "cross", layer: 0, head: 0, shown: null, hover: null,
               query: 1, vectors: {}, models: []};
let draws = 0, latest = 0;
const qkView = createQueryKeys(state, {redrawAll: drawAll, writeUrl});
const decodingView = createDecoding({force: (prefix) => translate({}, {...state.request, prefix})});

// ------------------------------------------------------------------ URL state

function readUrl() {
  const p = new URLSearchParams(location.search);
  return {text: p.get("text") || "", direction: p.get("direction"), kind: p.get("kind"),
          layer: parseInt(p.get("layer"), 10), head: parseInt(p.get("head"), 10), beam: parseInt(p.get("beam"), 10),
          query: parseInt(p.get("query"), 10), prefix: p.get("prefix") || ""};
}

function writeUrl() {
  if (!state.data) return;
  const p = new URLSearchParams({text: state.data.text, direction: state.data.direction, kind: state.kind,
                                 layer: state.layer + 1, head: state.head + 1, query: state.query + 1});
  if (state.data.beam > 1) p.set("beam", state.data.beam);
  if (state.request.prefix) p.set("prefix", state.request.prefix);
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
  const info = await api.models();
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
  const alternatives = $("alternatives");
  for (let k = 1; k <= (info.max_alternatives || 10); k++) alternatives.add(new Option(String(k), String(k)));
  alternatives.value = DEFAULT_ALTERNATIVES;
  return info;
}

// The request the form describes: a new sentence starts without a forced prefix.
function formRequest(prefix) {
  const text = $("text").value.trim();
  return text ? {text, direction: $("direction").value, beam: parseInt($("beam").value, 10) || 1, prefix} : null;
}

// Translate and redraw every view. view: the kind, layer, head and query to show (from a link);
// request: {text, direction, beam, prefix}, the form's when not given. An answer that arrives
// after a later request was made is dropped, so the last click wins.
async function translate(view, request) {
  request = request || formRequest("");
  if (!request) { setStatus("Type a sentence first.", true); $("text").focus(); return; }
  const t0 = performance.now(), ticket = ++latest;
  $("translate").disabled = true;
  decodingView.busy(true);
  setStatus(request.prefix ? `Decoding again after \u201c${request.prefix}\u201d\u2026` : "Translating\u2026");
  // the query-and-keys view's vectors come with the translation: the kind and layer to be shown
  view = view || {};
  const model = state.models.find((m) => m.direction === request.direction) || {layers: 1};
  const kind = KIND_NAMES[view.kind] ? view.kind : state.kind;
  const layer = Math.min(view.layer >= 1 ? view.layer : state.layer + 1, model.layers);
  const asked = {...request, alternatives: +$("alternatives").value, beamTree: request.beam >= 2};
  let data;
  try {
    data = await api.translate({...asked, vectors: {kind, layer}});
  } catch (e) {
    if (ticket === latest) {
      setStatus(`Error: ${e.message}`, true);
      $("translate").disabled = false;
      decodingView.busy(false);
    }
    return;
  }
  if (ticket !== latest) return;
  const t1 = performance.now();
  state.data = data;
  state.request = {text: data.text, direction: data.direction, beam: data.beam, prefix: request.prefix || ""};
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
  decodingView.draw(data);
  drawAll();
  const t2 = performance.now();
  performance.measure("explorer-click-to-drawing", {start: t0, end: t2, detail: {
    requestMs: t1 - t0, drawMs: t2 - t1, serverSeconds: data.seconds, prefix: state.request.prefix}});
  draws += 1;
  document.body.dataset.draws = draws;
  setStatus(`Done in ${Math.round(t2 - t0)} ms (model ${Math.round(data.seconds * 1000)} ms, ` +
            `drawing ${Math.round(t2 - t1)} ms).`);
  $("translate").disabled = false;
  decodingView.busy(false);
}

// ------------------------------------------------------------------ controls

function setupControls(layers, heads) {
  const fill = (select, n, name) => {
    select.innerHTML = "";
    for (let i = 0; i < n; i++) select.add(new Option(`${name} ${i + 1}`, String(i)));
  };
  fill($("layer"), layers, "layer");
  fill($("head"), heads, "head");
  fill($("qk-head"), heads, "head");
  setupHeadToggles(state, heads);
  $("translation").textContent = state.data.translation;
  $("note").textContent = `Attention: ${state.data.attention_note}. Weights rounded to ${state.data.decimals} ` +
                          `decimals. Model: ${state.data.model.layers} layers, ${state.data.model.heads} heads, ` +
                          `d_model ${state.data.model.d_model}.`;
}

function pickMap(layer, head) {
  state.layer = layer;
  state.head = head;
  drawAll();
  $("model-view").querySelector(`canvas[data-layer="${layer}"][data-head="${head}"]`).focus();
}

function drawAll() {
  $("kind").value = state.kind;
  $("layer").value = state.layer;
  $("head").value = state.head;
  drawHeadView(state);
  drawModelView(state, pickMap);
  drawDetail(state);
  qkView.draw();
  drawTable(state);
  writeUrl();
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
  $("form").addEventListener("submit", (e) => { e.preventDefault(); translate(); });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); translate(); }
  });
  $("kind").addEventListener("change", () => { state.kind = $("kind").value; state.hover = null; drawAll(); });
  $("layer").addEventListener("change", () => { state.layer = +$("layer").value; drawAll(); });
  $("head").addEventListener("change", () => { state.head = +$("head").value; drawAll(); });
  $("alternatives").addEventListener("change", () => { if (state.request) translate({}, state.request); });
  $("unforce").addEventListener("click", () => translate({}, {...state.request, prefix: ""}));
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
    await translate(view, formRequest(view.prefix));
  } else {
    $("text").focus();
  }
}

start();
