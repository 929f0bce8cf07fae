// The gateway API client. The bearer token lives in sessionStorage and travels only in the
// Authorization header (never in a URL). Every path the UI uses is in this file.

const TOKEN_KEY = "loupe.token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
    this.code = body && typeof body === "object" && body.error ? body.error.code : null;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function messageOf(status, body) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error === "object") {
    const details = Array.isArray(error.details)
      ? error.details.map((d) => `${d.loc ?? ""}: ${d.msg ?? ""}`).join("; ") : "";
    return details ? `${error.message} (${details})` : String(error.message ?? error.code);
  }
  const plain = typeof body === "string" && body && !body.trimStart().startsWith("<");
  return plain ? body.slice(0, 300) : `The gateway answered HTTP ${status}.`;
}

/** Call the API; resolves to parsed JSON (or null for 204), rejects with ApiError. */
export async function request(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  const current = token.get();
  if (current) headers.Authorization = `Bearer ${current}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `The gateway cannot be reached (${err.message}).`, null);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("loupe:unauthorized"));
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, parsed), parsed);
  return parsed;
}

const enc = encodeURIComponent;

/** Every gateway endpoint the UI uses (docs/gateway-api.md). */
export const api = {
  me: () => request("GET", "/v1/me"),
  claim: () => request("POST", "/v1/tasks/claim", {}),
  heartbeat: (taskId) => request("POST", `/v1/tasks/${enc(taskId)}/heartbeat`, {}),
  release: (taskId) => request("POST", `/v1/tasks/${enc(taskId)}/release`, {}),
  decide: (taskId, decision) => request("POST", `/v1/tasks/${enc(taskId)}/decision`, decision),
  item: (itemId) => request("GET", `/v1/items/${enc(itemId)}`),
  comments: (itemId) => request("GET", `/v1/items/${enc(itemId)}/comments`),
  comment: (itemId, text) => request("POST", `/v1/items/${enc(itemId)}/comments`, { text }),
  history: (itemId) => request("GET", `/v1/items/${enc(itemId)}/history`),
  diff: (itemId, decisionId) => request("GET", `/v1/items/${enc(itemId)}/diff${
    decisionId ? `?decision_id=${enc(decisionId)}` : ""}`),
  resolve: (itemId, body) => request("POST", `/v1/items/${enc(itemId)}/resolve`, body),
  conflicts: () => request("GET", "/v1/conflicts?limit=100"),
  policy: (project) => request("GET", `/v1/policy/${enc(project)}`),
  publishPolicy: (project, body) => request("PUT", `/v1/policy/${enc(project)}`, body),
  quality: () => request("GET", "/v1/reviewers/quality"),
};

/** A random id for idempotency keys. */
export function newKey() {
  return crypto.randomUUID();
}
