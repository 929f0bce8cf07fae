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

/** Upper bounds of the wait before each retry of a 503 (bounded: under a minute in all). */
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

/**
 * The wait before retry number `attempt` (0-based): Retry-After (when given) plus a random
 * share of the backoff ("full jitter", so tabs that got the same 503 do not come back in
 * lockstep), capped.
 */
export function retryDelay(attempt, retryAfter, random = Math.random) {
  const backoff = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];
  const seconds = Number(retryAfter);
  const asked = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
  return Math.min(Math.round(asked + random() * backoff), MAX_RETRY_AFTER_MS);
}

// Requests currently waiting to retry: the UI shows "reconnecting" while there is any.
let waiting = 0;
function reconnecting(delta) {
  const before = waiting;
  waiting += delta;
  if (before === 0 && waiting > 0) window.dispatchEvent(new CustomEvent("loupe:reconnecting"));
  if (before > 0 && waiting === 0) window.dispatchEvent(new CustomEvent("loupe:reconnected"));
}

// The one backoff gate of the tab: set while a request waits out a 503 (or an unreachable
// gateway). Other requests wait at the gate instead of starting retry chains of their own.
let gate = null;

/** Whether a request is waiting out a 503: interval refreshes skip their tick then. */
export function backingOff() {
  return gate !== null;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const timeLeft = (deadline) => (deadline === undefined ? Infinity : deadline - Date.now());

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
    const failure = new ApiError(0, `The gateway cannot be reached (${err.message}).`, null);
    // a read that could not reach the gateway (refused, restarting) is retried like a 503; a
    // write is not: it may have reached the gateway before the connection broke
    if (method === "GET") return { response: null, parsed: null, failure };
    throw failure;
  }
  if (response.status === 204) return { response, parsed: null };
  const text = await response.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
  return { response, parsed };
}

function again(method, outcome) {
  return outcome.response === null || retryable(method, outcome.response.status, outcome.parsed);
}

/** Wait until the gate opens; true when the request before it got through. */
async function atGate(deadline) {
  reconnecting(+1);
  try {
    const left = timeLeft(deadline);
    const timeout = Number.isFinite(left) ? sleep(Math.max(0, left)).then(() => false) : null;
    return await (timeout ? Promise.race([gate.promise, timeout]) : gate.promise);
  } finally {
    reconnecting(-1);
  }
}

/** Retry `outcome` with backoff, holding the gate: the tab's one retry chain. */
async function chain(method, path, body, extraHeaders, bearer, first, deadline) {
  let open;
  gate = { promise: new Promise((resolve) => { open = resolve; }) };
  reconnecting(+1);
  let outcome = first;
  try {
    for (let attempt = 0; attempt < RETRY_DELAYS_MS.length; attempt += 1) {
      if (!again(method, outcome) || token.get() !== bearer) break;
      const wait = retryDelay(attempt, outcome.response?.headers.get("Retry-After"));
      if (wait >= timeLeft(deadline)) break;  // e.g. a heartbeat: never beyond the lease
      await sleep(wait);
      if (token.get() !== bearer) break;  // signed out (or in as someone else) meanwhile
      outcome = await send(method, path, body, extraHeaders, bearer);
    }
  } finally {
    gate = null;
    reconnecting(-1);
    open(!again(method, outcome));
  }
  return outcome;
}

/**
 * Call the API; resolves to parsed JSON (or null for 204), rejects with ApiError.
 * A retryable 503 (see `retryable`), or a GET that cannot reach the gateway, is sent again
 * after a bounded, jittered backoff while the tab keeps the same token. Retries are
 * single-flight: while one request waits out a 503, the others wait at the same gate (and go
 * once it got through) instead of retrying on their own. `deadline` (ms since the epoch)
 * bounds the waiting and retrying (a lease heartbeat passes the lease's end). Only a 401 signs
 * the person out, never a 503.
 */
export async function request(method, path, body, extraHeaders = {}, { deadline } = {}) {
  const bearer = token.get();
  const unavailable = () => new ApiError(503, "The gateway is unavailable; try again shortly.", null);
  if (gate !== null && !(await atGate(deadline))) throw unavailable();
  let outcome = await send(method, path, body, extraHeaders, bearer);
  while (again(method, outcome) && gate !== null) {  // another request holds the gate
    if (!(await atGate(deadline))) break;
    outcome = await send(method, path, body, extraHeaders, bearer);
  }
  if (again(method, outcome) && gate === null) {
    outcome = await chain(method, path, body, extraHeaders, bearer, outcome, deadline);
  }
  const { response, parsed } = outcome;
  if (response === null) throw outcome.failure;
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
  /** `until`: when the lease ends (ms since the epoch); a heartbeat is not retried beyond it. */
  heartbeat: (taskId, until) =>
    request("POST", `/v1/tasks/${enc(taskId)}/heartbeat`, {}, {}, { deadline: until }),
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
