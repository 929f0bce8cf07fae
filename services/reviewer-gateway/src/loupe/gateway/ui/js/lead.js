// Lead view: conflicts with votes side by side and the final call; policy editor; reviewer quality.

import { api, ApiError, newKey } from "./api.js";
import { badge, h, pct, replace, toast, when } from "./dom.js";
import { sameValue } from "./geometry.js";
import { policyEditor } from "./policy.js";

/** A one-line human summary of a label. */
export function describeLabel(label) {
  if (!label) return "no label";
  if (label.kind === "classification") return label.label;
  if (label.kind === "bbox") return `${label.boxes.length} boxes: ${label.boxes.map((b) => b.label).join(", ")}`;
  const ids = new Set(label.frames.flatMap((f) => f.boxes.map((b) => b.track_id)));
  return `${label.frames.length} frames, tracks ${[...ids].join(", ")}`;
}

function voteCard(vote, onPick) {
  return h("div", { class: "vote", dataset: { reviewer: vote.reviewer.id, action: vote.action } },
    h("div", { class: "row" }, h("strong", {}, vote.reviewer.id), badge(vote.reviewer.tier, "tier"), badge(vote.action)),
    h("p", { class: "vote-label" }, describeLabel(vote.label)),
    h("p", { class: "muted" }, when(vote.decided_at), vote.weight != null ? ` · weight ${vote.weight.toFixed(2)}` : ""),
    vote.label ? h("button", { type: "button", class: "pick-vote", onclick: () => onPick(vote.label) }, "Make this final") : null);
}

function conflictCard(conflict) {
  const reason = h("input", { type: "text", class: "final-reason", maxlength: 500, placeholder: "Reason for the final call",
    "aria-label": "Reason" });
  const status = h("p", { class: "status", role: "status" });
  const card = h("article", { class: "panel conflict", dataset: { item: conflict.item_id, conflict: conflict.conflict_id } });
  // one key per card: a retry after a lost answer replays the first call instead of a second one
  const key = newKey();

  async function finalCall(action, label) {
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      let kind = action;
      if (label) {
        const item = await api.item(conflict.item_id);
        kind = sameValue(item.prediction.label, label) ? "approve" : "correct";
      }
      const body = { action: kind, label, reason: reason.value.trim() || "lead final call", idempotency_key: key };
      const done = await api.resolve(conflict.item_id, body);
      card.classList.add("resolved");
      status.textContent = `Final call sent (${kind}${label ? `: ${describeLabel(label)}` : ""}); closed ${done.closed_tasks.length} task(s).`;
      toast(`Final call sent for ${conflict.item_id}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      for (const b of card.querySelectorAll("button")) b.disabled = false;
      status.textContent = `Not sent: ${err.message}`;
      toast(`Final call failed: ${err.message}`, "error");
    }
  }

  const d = conflict.disagreement;
  const classLabels = conflict.votes.some((v) => v.label?.kind === "classification") ? conflict.classes : [];
  card.append(
    h("div", { class: "row" }, h("h2", {}, conflict.item_id), badge(conflict.project),
      badge(`agreement ${pct(d.agreement)}`, "reason"), badge(conflict.resolution),
      conflict.escalated_to ? badge(`escalated to ${conflict.escalated_to}`, "tier") : null,
      d.identity_switches ? badge(`${d.identity_switches} identity switches`) : null,
      d.mean_iou != null ? badge(`mean IoU ${d.mean_iou.toFixed(2)}`) : null,
      h("span", { class: "muted" }, when(conflict.created_at))),
    h("div", { class: "votes" }, conflict.votes.map((v) => voteCard(v, (label) => finalCall("correct", label)))),
    classLabels.length ? h("div", { class: "row" }, h("span", {}, "Or choose the class:"),
      classLabels.map((name) => h("button", { type: "button", class: "pick-class", dataset: { class: name },
        onclick: () => finalCall("correct", { kind: "classification", label: name, scores: {} }) }, name))) : null,
    h("div", { class: "row" }, reason,
      h("button", { type: "button", class: "reject-item", onclick: () => finalCall("reject", null) }, "Reject item"),
      h("a", { href: `#/items/${encodeURIComponent(conflict.item_id)}/history` }, "history"),
      h("a", { href: `#/items/${encodeURIComponent(conflict.item_id)}/diff` }, "diff")),
    status);
  return card;
}

async function conflictsTab(pane) {
  const { conflicts } = await api.conflicts();
  replace(pane, h("h1", {}, "Conflicts"),
    conflicts.length ? conflicts.map(conflictCard) : h("p", { class: "muted", id: "no-conflicts" }, "No conflicts."));
}

async function qualityTab(pane) {
  const { reviewers } = await api.quality();
  const rows = reviewers.map((r) => h("tr", { dataset: { reviewer: r.id } }, h("td", {}, r.id),
    h("td", { class: "num" }, String(r.votes)), h("td", { class: "num" }, String(r.scored)),
    h("td", { class: "num" }, String(r.agreed)), h("td", { class: "num" }, r.agreement == null ? "–" : pct(r.agreement)),
    h("td", { class: "num" }, String(r.skips)), h("td", { class: "num" }, String(r.escalations)),
    h("td", { class: "num" }, r.mean_seconds == null ? "–" : `${r.mean_seconds.toFixed(1)} s`)));
  const heads = ["reviewer", "votes", "scored", "agreed", "agreement", "skips", "escalations", "mean time"];
  replace(pane, h("h1", {}, "Reviewer quality"),
    h("p", { class: "muted" }, "Agreement: votes that matched the final label, out of those scored so far."),
    h("table", { id: "quality" }, h("thead", {}, h("tr", {}, heads.map((t, i) => h("th", { class: i ? "num" : "" }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No decisions yet.")))));
}

/** Render the lead view (tabs: conflicts, policy, reviewers). */
export async function showLead(view, me) {
  const pane = h("div", { id: "lead-pane" });
  const tabs = [["conflicts", "Conflicts", conflictsTab], ["policy", "Policy", (p) => policyEditor(p, me)],
    ["quality", "Reviewers", qualityTab]];
  const bar = h("div", { class: "row tabs", role: "tablist" });
  async function open(name) {
    for (const b of bar.children) b.setAttribute("aria-selected", b.dataset.tab === name ? "true" : "false");
    for (const b of bar.children) b.classList.toggle("chosen", b.dataset.tab === name);
    replace(pane, h("p", { class: "muted" }, "Loading…"));
    try {
      await tabs.find(([n]) => n === name)[2](pane);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      replace(pane, h("p", { class: "error", role: "alert" }, err.message));
    }
  }
  bar.append(...tabs.map(([name, text]) => h("button", { type: "button", role: "tab", dataset: { tab: name },
    id: `tab-${name}`, onclick: () => open(name) }, text)));
  replace(view, h("div", { class: "lead" }, bar, pane));
  await open("conflicts");
  return null;
}
