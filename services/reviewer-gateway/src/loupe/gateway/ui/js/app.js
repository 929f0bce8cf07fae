// Entry point: sign-in, the header (who, tier, queue sizes), and hash routing between screens.

import { api, ApiError, backingOff, token } from "./api.js";
import { badge, h, replace, toast } from "./dom.js";
import { showDiff } from "./diff.js";
import { showHistory } from "./history.js";
import { showLead } from "./lead.js";
import { showReview } from "./review.js";

const view = document.getElementById("view");
const session = { me: null, leave: null, signingOut: false };
let queueTimer = null;

/** Whether the signed-in person may use lead features. */
export function isLead(me) {
  return me && (me.role === "lead" || me.role === "admin" || me.tier === "lead");
}

function signInScreen(problem) {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", required: true,
    "aria-label": "Access token", placeholder: "paste your access token" });
  const error = h("p", { class: "error", role: "alert", id: "signin-error" }, problem || "");
  const form = h("form", { class: "panel signin", id: "signin" },
    h("h1", {}, "Sign in to Loupe"),
    h("p", { class: "muted" }, "Use the access token your Loupe admin gave you. It is kept only for this browser tab."),
    input, error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    await start();
  });
  document.getElementById("top").hidden = true;
  replace(view, form);
  input.focus();
}

/** Re-read the caller (queue sizes change all the time) and repaint the header badges. */
async function refreshQueues() {
  const area = document.getElementById("queues");
  try {
    session.me = await api.me();
    const entries = Object.entries(session.me.queues || {});
    replace(area, entries.length ? entries.map(([tier, size]) =>
      h("span", { class: "badge", dataset: { tier } }, `${tier}: ${size}`)) : badge("no queues"));
    area.title = "Open tasks per tier you can take";
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signOut("Your session ended; sign in again.");
    replace(area, badge("queues unavailable", "bad"));
  }
}

function renderHeader(me) {
  const nav = document.getElementById("nav");
  const links = [["#/review", "Review"]];
  if (isLead(me)) links.push(["#/lead", "Lead"]);
  replace(nav, links.map(([href, text]) => h("a", { href, dataset: { route: href } }, text)));
  replace(document.getElementById("who"),
    h("span", { id: "who-name" }, me.name || me.id), " ", me.tier ? badge(me.tier, "tier") : null,
    me.role && me.role !== me.tier ? [" ", badge(me.role)] : null);
  document.getElementById("top").hidden = false;
}

function markNav(hash) {
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", hash.startsWith(link.dataset.route));
  }
}

async function route() {
  if (!session.me) return;
  if (session.leave) { await session.leave(); session.leave = null; }
  const hash = location.hash || "#/review";
  markNav(hash);
  const item = hash.match(/^#\/items\/([^/]+)\/(diff|history)$/);
  try {
    if (item) {
      const itemId = decodeURIComponent(item[1]);
      session.leave = item[2] === "diff" ? await showDiff(view, itemId) : await showHistory(view, itemId, session.me);
    } else if (hash === "#/lead" && isLead(session.me)) {
      session.leave = await showLead(view, session.me);
    } else {
      session.leave = await showReview(view, session.me, { refreshQueues });
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signOut("Your session ended; sign in again.");
    replace(view, h("div", { class: "panel error", role: "alert" }, `Could not load this screen: ${err.message}`));
  }
  view.focus({ preventScroll: true });
}

async function signOut(message) {
  if (session.signingOut) return;
  session.signingOut = true;
  try {
    if (session.leave) { await session.leave(); session.leave = null; }
  } finally {
    clearInterval(queueTimer);
    token.clear();
    session.me = null;
    session.signingOut = false;
    signInScreen(message);
  }
}

/** The gateway could not be reached or kept answering 503: keep the token, offer a retry. */
function unavailableScreen(problem) {
  const retry = h("button", { type: "button", class: "primary", id: "retry-start" }, "Try again");
  retry.addEventListener("click", () => start());
  const leave = h("button", { type: "button", class: "ghost" }, "Sign out");
  leave.addEventListener("click", () => { token.clear(); signInScreen(); });
  document.getElementById("top").hidden = true;
  replace(view, h("div", { class: "panel", id: "unavailable" },
    h("h1", {}, "Loupe is not available right now"),
    h("p", { class: "error", role: "alert" }, problem), retry, " ", leave));
}

async function start() {
  if (!token.get()) return signInScreen();
  try {
    session.me = await api.me();
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      token.clear();
      return signInScreen("That token was not accepted.");
    }
    return unavailableScreen(err.message);  // not a verdict on the token: keep it
  }
  replace(view, h("p", { class: "muted" }, "Loading…"));
  renderHeader(session.me);
  await refreshQueues();
  clearInterval(queueTimer);
  // a tick while a request waits out a 503 is skipped: it would only queue behind that request
  queueTimer = setInterval(() => { if (!document.hidden && !backingOff()) refreshQueues(); }, 10000);
  await route();
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
// a request is waiting to retry a 503 (e.g. the gateway rebuilds after losing Redis)
window.addEventListener("loupe:reconnecting", () => { document.getElementById("reconnecting").hidden = false; });
window.addEventListener("loupe:reconnected", () => { document.getElementById("reconnecting").hidden = true; });
window.addEventListener("loupe:unauthorized", () => {
  if (session.me) signOut("Your session ended; sign in again.");
});
window.addEventListener("unhandledrejection", (event) => toast(String(event.reason?.message ?? event.reason), "error"));
start();
