// The one place the page talks to the server: GET /api/models and POST /api/translate.
// A translation request is described by a plain object (text, direction, beam, prefix,
// alternatives, beamTree, vectors); every view asks through `translate`, so a forced prefix
// travels with each request made for the same translation.

async function answerOf(response) {
  let data;
  try {
    data = await response.json();
  } catch (e) {
    throw new Error(`HTTP ${response.status}`);
  }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

export async function models() {
  return answerOf(await fetch("/api/models"));
}

// The JSON body of a request: only the fields that are set, as the API contract names them.
export function requestBody(request) {
  const body = {text: request.text, direction: request.direction, beam: request.beam || 1};
  if (request.prefix) body.prefix = request.prefix;
  if (request.alternatives) body.alternatives = request.alternatives;
  if (request.beamTree && body.beam >= 2) body.beam_tree = true;
  if (request.vectors) body.vectors = request.vectors;
  return body;
}

export async function translate(request) {
  const response = await fetch("/api/translate", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(requestBody(request)),
  });
  return answerOf(response);
}
