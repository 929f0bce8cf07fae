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

/** Waits before each retry of a 503 (bounded: about half a minute in all, then the error). */
export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000];
const MAX_RETRY_AFTER_MS = 8000;

/**
 * Whether a 503 may be sent again as it is: `rebuilding` always (the gateway refused before
 * doing anything: authentication or a claim while it rebuilds its Redis working set), any other
 * 503 only for reads (a POST answered `kafka_unavailable` may still reach Kafka later).
 */
export function retryable(method, status, body) {
  if (status !== 503) return false;
  const code = body && typeof body === "object" && body.error ? body.error.code : null;
  return code === "rebuilding" || method === "GET";
}

/** The wait before retry number `attempt` (0-based): the backoff, or Retry-After if longer. */
export function retryDelay(attempt, retryAfter) {
  const backoff = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];
  const seconds = Number(retryAfter);
  const asked = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
  return Math.min(Math.max(backoff, asked), MAX_RETRY_AFTER_MS);
}

// Requests currently waiting to retry: the UI shows "reconnecting" while there is any.
let waiting = 0;
function reconnecting(delta) {
  const before = waiting;
  waiting += delta;
  if (before === 0 && waiting > 0) window.dispatchEvent(new CustomEvent("loupe:reconnecting"));
  if (before > 0 && waiting === 0) window.dispatchEvent(new CustomEvent("loupe:reconnected"));
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function send(method, path, body, extraHeaders, bearer) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
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
  if (response.status === 204) return { response, parsed: null };
  const text = await response.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
  return { response, parsed };
}

/**
 * Call the API; resolves to parsed JSON (or null for 204), rejects with ApiError.
 * A retryable 503 (see `retryable`) is sent again after a bounded backoff while the tab keeps
 * the same token; only a 401 signs the person out, never a 503.
 */
export async function request(method, path, body, extraHeaders = {}) {
  const bearer = token.get();
  let { response, parsed } = await send(method, path, body, extraHeaders, bearer);
  if (retryable(method, response.status, parsed)) {
    reconnecting(+1);
    try {
      for (let attempt = 0; attempt < RETRY_DELAYS_MS.length; attempt += 1) {
        if (!retryable(method, response.status, parsed) || token.get() !== bearer) break;
        await sleep(retryDelay(attempt, response.headers.get("Retry-After")));
        if (token.get() !== bearer) break;  // signed out (or in as someone else) meanwhile
        ({ response, parsed } = await send(method, path, body, extraHeaders, bearer));
      }
    } finally {
      reconnecting(-1);
    }
  }
  if (response.status === 204) return null;
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
