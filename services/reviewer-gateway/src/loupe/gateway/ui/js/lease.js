// The lease countdown and heartbeats: the lease is extended while the tab is visible.

import { ApiError } from "./api.js";
import { toast } from "./dom.js";

const LOW_SECONDS = 60;

/** "m:ss" for a remaining duration in milliseconds (never negative). */
export function formatRemaining(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** How often to heartbeat a lease of `seconds`: a third of it, between 2 s and 60 s. */
export function heartbeatEvery(seconds) {
  return Math.min(60, Math.max(2, seconds / 3)) * 1000;
}

/**
 * Run the countdown in `node` and heartbeat `task` while the document is visible.
 * Local expiry is computed from the lease's `seconds` (immune to clock skew with the server).
 * Calls onExpired() once when the lease is gone. Returns {stop()}.
 */
export function leaseClock({ task, lease, node, heartbeat, onExpired }) {
  let expiresAt = Date.now() + lease.seconds * 1000;
  let stopped = false;
  let beating = false;

  function paint() {
    const left = expiresAt - Date.now();
    node.textContent = formatRemaining(left);
    node.classList.toggle("low", left < LOW_SECONDS * 1000);
    node.dataset.seconds = String(Math.max(0, Math.ceil(left / 1000)));
    if (left <= 0) finish();
  }

  function finish() {
    if (stopped) return;
    stop();
    onExpired();
  }

  async function beat() {
    if (stopped || beating || document.hidden) return;
    beating = true;
    try {
      const renewed = await heartbeat(task.task_id, expiresAt);
      if (!stopped) expiresAt = Date.now() + renewed.seconds * 1000;
    } catch (err) {
      if (err instanceof ApiError && (err.code === "not_lease_holder" || err.status === 404)) finish();
      else if (!stopped) toast(`Heartbeat failed: ${err.message}`, "error");
    } finally {
      beating = false;
      if (!stopped) paint();
    }
  }

  const tick = setInterval(paint, 1000);
  const pulse = setInterval(beat, heartbeatEvery(lease.seconds));
  const onVisible = () => { if (!document.hidden) beat(); };
  document.addEventListener("visibilitychange", onVisible);

  function stop() {
    stopped = true;
    clearInterval(tick);
    clearInterval(pulse);
    document.removeEventListener("visibilitychange", onVisible);
  }

  paint();
  return { stop, beat };
}
