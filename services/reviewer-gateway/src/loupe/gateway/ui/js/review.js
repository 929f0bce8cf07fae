// The review screen: claim the next task, show the item and the model's label, edit, decide.

import { api, ApiError, newKey } from "./api.js";
import { boxesEditor } from "./boxes.js";
import { classificationEditor } from "./classify.js";
import { badge, h, kbdHint, pct, replace, toast, when } from "./dom.js";
import { commandFor, SHORTCUTS } from "./keys.js";
import { describeLabel } from "./lead.js";
import { leaseClock } from "./lease.js";
import { mediaUrl } from "./media.js";
import { blockedText, whenBlocked } from "./blocked.js";
import { tracksEditor } from "./tracks.js";

const ACTIONS = [
  ["approve", "Approve", "A"], ["correct", "Correct", "1–9"], ["reject", "Reject", "R"],
  ["skip", "Skip", "S"], ["escalate", "Escalate", "E"],
];
const EMPTY_POLL_MS = 5000;

function helpDialog() {
  const dialog = h("dialog", { class: "help", id: "help", "aria-label": "Keyboard shortcuts" },
    h("h2", {}, "Keyboard shortcuts"),
    h("table", {}, h("tbody", {}, SHORTCUTS.map(([key, what]) => h("tr", {}, h("td", {}, kbdHint(key)), h("td", {}, what))))),
    h("p", { class: "muted" }, "A classification review is one key plus Enter, e.g. 2 then Enter."),
    h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")));
  return dialog;
}

function itemPanel(task) {
  const data = task.prediction.data;
  const parts = [];
  if (data && typeof data.text === "string") {
    parts.push(h("div", { class: "item-text", id: "item-text" }, data.text));
  }
  if (task.task_type === "classification" && data && data.uri) {
    const src = mediaUrl(data.uri);
    if (src) {
      const image = h("img", { class: "item-image", src, alt: "item image", referrerpolicy: "no-referrer" });
      whenBlocked(src, image, () => image.replaceWith(
        h("p", { class: "media-blocked", id: "media-blocked", role: "status" }, blockedText(src))));
      parts.push(image);
    } else {
      parts.push(h("p", { class: "muted" }, "Media not shown (unsupported address): ", data.uri));
    }
  }
  if (!parts.length && task.task_type === "classification") parts.push(h("p", { class: "muted" }, "This item has no text or image."));
  return parts;
}

/** Earlier votes and the conflict that escalated this task (shown only when the API sends them). */
function priorVotes(task) {
  const votes = task.conflict?.votes || task.votes || [];
  if (!votes.length) return null;
  const d = task.conflict?.disagreement;
  return h("section", { class: "panel prior-votes", id: "prior-votes" },
    h("h2", {}, task.conflict ? "Escalated: the earlier votes disagreed" : "Other votes"),
    d ? h("p", { class: "muted" }, `agreement ${pct(d.agreement)}`,
      d.mean_iou != null ? ` · mean IoU ${d.mean_iou.toFixed(2)}` : "",
      d.identity_switches ? ` · ${d.identity_switches} identity switches` : "") : null,
    h("div", { class: "votes" }, votes.map((v) => h("div", { class: "vote", dataset: { reviewer: v.reviewer.id } },
      h("div", { class: "row" }, h("strong", {}, v.reviewer.id), badge(v.reviewer.tier, "tier"), badge(v.action)),
      h("p", {}, describeLabel(v.label))))));
}

function editorFor(task, onChange) {
  const classes = task.allowed_classes;
  if (task.task_type === "bbox") return boxesEditor(task, classes, onChange);
  if (task.task_type === "track") return tracksEditor(task, classes, onChange);
  return classificationEditor(task.prediction, classes, onChange);
}

function modelSummary(task) {
  const label = task.prediction.label;
  const model = task.prediction.model;
  let text = "";
  if (label.kind === "classification") text = label.label;
  else if (label.kind === "bbox") text = `${label.boxes.length} box${label.boxes.length === 1 ? "" : "es"}`;
  else text = `${label.frames.length} frames`;
  return h("dl", { class: "meta", id: "model-label" },
    h("dt", {}, "Model label"), h("dd", { class: "model-label" }, text),
    h("dt", {}, "Confidence"), h("dd", { id: "confidence" }, pct(task.confidence)),
    h("dt", {}, "Model"), h("dd", {}, `${model.name}@${model.version}`),
    h("dt", {}, "Item"), h("dd", { id: "item-id" }, task.item_id),
    h("dt", {}, "Project"), h("dd", {}, task.project),
    h("dt", {}, "Tier"), h("dd", {}, task.required_tier,
      task.escalation_level ? ` (escalation ${task.escalation_level})` : ""),
    h("dt", {}, "Queued"), h("dd", {}, when(task.created_at)));
}

function reasonBadges(task) {
  const badges = task.reasons.map((r) => {
    const b = badge(r.code.replaceAll("_", " "), "reason");
    b.dataset.reason = r.code;
    if (r.detail) b.title = r.detail;
    return b;
  });
  if (task.safety_critical) badges.push(badge("safety critical", "bad"));
  if (task.spot_check) badges.push(badge("spot check"));
  return h("div", { class: "row reasons", id: "reasons" }, badges);
}

/** Render the review screen into `view`; returns a cleanup function. */
export async function showReview(view, me, { refreshQueues }) {
  let current = null; // {task, lease, editor, action, started, clock, key, submitting}
  let pollTimer = null;
  let lastDone = null;
  let left = false; // the person navigated away: late answers must not touch the page
  const help = helpDialog();

  function lastDoneLinks() {
    if (!lastDone) return null;
    const id = encodeURIComponent(lastDone);
    return h("p", { class: "muted last-done" }, "Last reviewed: ", h("strong", {}, lastDone), " · ",
      h("a", { href: `#/items/${id}/diff`, id: "last-diff" }, "diff"), " · ",
      h("a", { href: `#/items/${id}/history`, id: "last-history" }, "history & comments"));
  }

  function showEmpty(message) {
    replace(view, h("div", { class: "panel empty", id: "no-task" },
      h("h1", {}, message), h("p", { class: "muted" }, "New tasks are picked up automatically."),
      h("button", { type: "button", onclick: () => next() }, "Check now"), lastDoneLinks()), help);
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => { if (!document.hidden) next(); else showEmpty(message); }, EMPTY_POLL_MS);
  }

  function setAction(action) {
    if (!current || current.expired) return;
    current.action = action;
    if (action === "approve") current.editor.reset();
    paintActions();
  }

  function paintActions() {
    for (const button of view.querySelectorAll(".actions button")) {
      const on = button.dataset.action === current.action;
      button.classList.toggle("chosen", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    }
    const submit = view.querySelector("#submit");
    submit.disabled = !current.action || current.expired || current.submitting;
    submit.textContent = current.action ? `Submit: ${current.action}` : "Choose an action";
  }

  function onEdit(changed) {
    if (!current) return;
    current.action = changed ? "correct" : "approve";
    paintActions();
  }

  async function submit() {
    if (!current || !current.action || current.expired || current.submitting) return;
    const { task, action } = current;
    const body = {
      action, idempotency_key: current.key,
      seconds_spent: Math.min(86400, (performance.now() - current.started) / 1000),
    };
    if (action === "approve" || action === "correct") body.label = current.editor.label();
    const comment = view.querySelector("#comment").value.trim();
    if (comment) body.comment = comment;
    const mine = current;
    mine.submitting = true;
    paintActions();
    try {
      await api.decide(task.task_id, body);
    } catch (err) {
      mine.submitting = false;
      if (left || current !== mine) return;
      if (err instanceof ApiError && err.code === "not_lease_holder") return expire("The lease ended before the decision was sent.");
      paintActions();
      toast(`Not submitted: ${err.message}`, "error");
      return;
    }
    toast(`${action} submitted for ${task.item_id}`);
    mine.clock.stop();
    if (left || current !== mine) return;
    lastDone = task.item_id;
    current = null;
    refreshQueues();
    await next();
  }

  function expire(message) {
    if (!current) return;
    current.expired = true;
    current.clock?.stop();
    const lease = view.querySelector("#lease");
    lease.textContent = "expired";
    lease.classList.add("low");
    const banner = view.querySelector("#lease-expired");
    replace(banner, h("span", {}, message || "Your lease on this task expired: it went back to the queue and this decision can no longer be sent."),
      h("button", { type: "button", id: "claim-next", onclick: () => next() }, "Claim the next task"));
    banner.hidden = false;
    view.querySelector(".review")?.setAttribute("data-expired", "true");
    paintActions();
  }

  function render(claimed) {
    const { task, lease } = claimed;
    current = { task, lease, action: null, started: performance.now(), key: newKey(), expired: false, submitting: false };
    current.editor = editorFor(task, onEdit);
    const comment = h("textarea", { id: "comment", class: "comment", maxlength: 4000,
      placeholder: "Optional comment (C to focus, Esc to leave)", "aria-label": "Comment" });
    const leaseNode = h("span", { class: "lease", id: "lease" });
    const actions = h("div", { class: "actions", role: "group", "aria-label": "Decision" },
      ACTIONS.map(([action, text, key]) => h("button", { type: "button", dataset: { action },
        onclick: () => (action === "correct" ? toast("Pick a class or edit the label to correct it.") : setAction(action)) },
        h("span", {}, text), kbdHint(key))));
    const submitButton = h("button", { type: "button", id: "submit", class: "primary", onclick: submit }, "Choose an action");
    const side = h("aside", { class: "panel side" },
      h("div", { class: "row" }, h("span", {}, "Lease "), leaseNode,
        h("button", { type: "button", class: "ghost", onclick: () => help.showModal(), title: "Keyboard shortcuts (?)" }, kbdHint("?"))),
      reasonBadges(task), modelSummary(task),
      h("h2", {}, "Decision"), actions, comment,
      h("div", { class: "submit-row" }, submitButton, kbdHint("Enter")), lastDoneLinks());
    const banner = h("div", { class: "lease-expired", id: "lease-expired", role: "alert", hidden: true });
    const main = h("div", { class: "main" }, h("h1", {}, `Review · ${task.task_type}`), itemPanel(task),
      current.editor.node, priorVotes(task));
    replace(view, banner, h("div", { class: "grid-review review", dataset: { taskId: task.task_id, taskType: task.task_type } }, main, side), help);
    current.clock = leaseClock({ task, lease, node: leaseNode, heartbeat: api.heartbeat, onExpired: () => expire() });
    paintActions();
  }

  async function next() {
    clearTimeout(pollTimer);
    if (current && !current.expired) return;
    current = null;
    let claimed;
    try {
      claimed = await api.claim();
      if (left) {
        if (claimed) await api.release(claimed.task.task_id).catch(() => null);
        return;
      }
    } catch (err) {
      if (left) return;
      if (err instanceof ApiError && err.status === 403) return showEmpty("Your role does not review items.");
      if (err instanceof ApiError && err.status === 401) throw err;
      return showEmpty(`Could not claim a task: ${err.message}`);
    }
    if (!claimed) return showEmpty("No tasks waiting for you");
    render(claimed);
  }

  function onKey(event) {
    if (help.open) { if (event.key === "?") help.close(); return; }
    const cmd = commandFor(event);
    if (event.key === "Enter" && event.ctrlKey && event.target.id === "comment") { event.preventDefault(); submit(); return; }
    if (!cmd || !current) return;
    if (cmd.type === "escape") { if (event.target.id === "comment") event.target.blur(); else current.editor.command(cmd); return; }
    if (cmd.type === "help") { help.showModal(); event.preventDefault(); return; }
    if (current.expired) return;
    if (cmd.type === "submit") { event.preventDefault(); submit(); return; }
    if (cmd.type === "action") { event.preventDefault(); setAction(cmd.action); return; }
    if (cmd.type === "comment") { event.preventDefault(); view.querySelector("#comment").focus(); return; }
    if (current.editor.command(cmd)) event.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  await next();
  return async () => {
    left = true;
    document.removeEventListener("keydown", onKey);
    clearTimeout(pollTimer);
    if (current && !current.expired) {
      current.clock.stop();
      try { await api.release(current.task.task_id); } catch { /* the lease simply expires */ }
    }
    current = null;
  };
}
