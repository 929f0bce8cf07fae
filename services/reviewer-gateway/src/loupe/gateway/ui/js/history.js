// Item history: the audit trail (senior and lead) and the comment thread (everyone); post a comment.

import { api, ApiError } from "./api.js";
import { badge, h, replace, toast, when } from "./dom.js";

/** Whether the person may read the audit trail (the API allows senior and lead). */
export function seesAudit(me) {
  return me && (me.role === "senior" || me.role === "lead");
}

function auditLine(event) {
  const details = event.details && Object.keys(event.details).length
    ? h("div", { class: "muted details" }, Object.entries(event.details)
      .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · ")) : null;
  return h("li", { class: event.action === "comment" ? "comment" : "", dataset: { action: event.action } },
    h("div", { class: "row" }, badge(event.action.replaceAll("_", " ")), h("strong", {}, event.actor.id),
      h("span", { class: "muted" }, `${event.actor.role} · ${when(event.at)}`)),
    event.reason ? h("div", { class: "body" }, event.reason) : null, details);
}

function commentLine(comment) {
  return h("li", { class: "comment", dataset: { commentId: comment.comment_id } },
    h("div", { class: "row" }, h("strong", {}, comment.author.id),
      h("span", { class: "muted" }, `${comment.author.role} · ${when(comment.at)}`)),
    h("div", { class: "body" }, comment.text));
}

/** Render the history screen of one item. */
export async function showHistory(view, itemId, me) {
  replace(view, h("p", { class: "muted" }, "Loading history…"));
  const thread = h("ol", { class: "timeline", id: "comments" });
  const audit = h("ol", { class: "timeline", id: "audit" });
  const text = h("textarea", { id: "new-comment", class: "comment", maxlength: 4000, required: true,
    "aria-label": "New comment", placeholder: "Write a comment for the team" });
  const form = h("form", { id: "comment-form" }, text,
    h("div", { class: "submit-row" }, h("button", { type: "submit", class: "primary" }, "Post comment")));

  async function loadComments() {
    const { comments } = await api.comments(itemId);
    replace(thread, comments.length ? comments.map(commentLine) : h("li", { class: "muted" }, "No comments yet."));
  }

  async function loadAudit() {
    try {
      const { events } = await api.history(itemId);
      replace(audit, events.length ? events.map(auditLine) : h("li", { class: "muted" }, "No audit events yet."));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      replace(audit, h("li", { class: "error" }, `Audit trail unavailable: ${err.message}`));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = text.value.trim();
    if (!body) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await api.comment(itemId, body);
      text.value = "";
      toast("Comment posted");
      await loadComments();
      if (seesAudit(me)) await loadAudit();
    } catch (err) {
      toast(`Comment not posted: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  const item = await api.item(itemId).catch((err) => {
    if (err instanceof ApiError && err.status === 401) throw err;
    return null;
  });
  const link = `#/items/${encodeURIComponent(itemId)}/diff`;
  replace(view, h("div", { class: "side-by-side", id: "history" },
    h("section", { class: "panel" }, h("h1", {}, `History · ${itemId}`),
      item ? h("p", { class: "muted" }, `${item.project} · ${item.task_type} · `,
        item.resolved ? `resolved (revision ${item.resolved.revision})` : "not resolved yet") : null,
      h("p", {}, h("a", { href: link }, "Diff"), " · ", h("a", { href: "#/review" }, "Back to review")),
      h("h2", {}, "Comments"), thread, form),
    seesAudit(me) ? h("section", { class: "panel" }, h("div", { class: "row" }, h("h2", {}, "Audit trail"),
      h("button", { type: "button", class: "ghost", id: "audit-refresh", onclick: () => loadAudit() }, "Refresh")),
    audit) : null));
  await loadComments();
  if (seesAudit(me)) await loadAudit();
  return null;
}
