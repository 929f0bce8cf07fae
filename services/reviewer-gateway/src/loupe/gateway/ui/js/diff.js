// Diff screen: the model's label against the final label (or one vote), colour-coded.

import { api, ApiError } from "./api.js";
import { h, pct, replace, s } from "./dom.js";
import { labelFontSize } from "./boxstage.js";
import { toPixels } from "./geometry.js";
import { mediaUrl } from "./media.js";
import { svgBlockedNotice, whenBlocked } from "./blocked.js";

const KINDS = ["kept", "moved", "relabelled", "added", "removed"];
const COLOURS = { kept: "#1d7a3a", moved: "#2457c5", relabelled: "#b25b00", added: "#6b3fa0", removed: "#b3261e" };

function legend() {
  return h("div", { class: "legend" }, KINDS.map((kind) => h("span", { class: `diff-${kind}` }, kind)));
}

function classificationDiff(c, diff) {
  return h("div", { class: "side-by-side", id: "diff-classes" },
    h("div", { class: "panel" }, h("h2", {}, "Model"),
      h("p", { class: "diff-before" }, h("strong", {}, c.before), " ", pct(c.score_before))),
    h("div", { class: "panel" }, h("h2", {}, diff.against === "final" ? "Final" : "Vote"),
      h("p", { class: `diff-after ${c.changed ? "diff-relabelled" : "diff-kept"}` }, h("strong", {}, c.after),
        c.changed ? " (changed)" : " (unchanged)")));
}

/**
 * Every drawn box of a boxes diff: {kind, side: "before" | "after", box (pixels), caption}.
 * Only one box per change carries a caption (the corrected one; the model's when removed).
 */
export function boxesToDraw(diff) {
  const image = diff.original.image;
  const before = diff.original.boxes.map((b) => toPixels(b, image, diff.original.units));
  const after = diff.corrected.boxes.map((b) => toPixels(b, image, diff.corrected.units));
  const drawn = [];
  for (const kind of KINDS) {
    for (const entry of diff.boxes[kind] || []) {
      const caption = kind === "relabelled" ? `${entry.label_before} → ${entry.label_after}` : `${entry.label} · ${kind}`;
      if (entry.before !== undefined && kind !== "kept") {
        drawn.push({ kind, side: "before", box: before[entry.before], caption: kind === "removed" ? caption : "" });
      }
      if (entry.after !== undefined) drawn.push({ kind, side: "after", box: after[entry.after], caption });
    }
  }
  return drawn.filter((d) => d.box);
}

function boxesDiff(diff, uri) {
  const image = diff.original.image;
  const font = labelFontSize(image);
  const svg = s("svg", { viewBox: `0 0 ${image.width} ${image.height}`, role: "img", "aria-label": "Boxes diff" },
    s("rect", { x: 0, y: 0, width: image.width, height: image.height, fill: "#3a414d" }));
  const href = mediaUrl(uri);
  if (href) {
    const picture = s("image", { href, x: 0, y: 0, width: image.width, height: image.height, preserveAspectRatio: "none" });
    whenBlocked(href, picture, () => picture.replaceWith(svgBlockedNotice(image, href)));
    svg.append(picture);
  }
  for (const { kind, side, box, caption } of boxesToDraw(diff)) {
    svg.append(s("g", { class: `diff-box diff-${kind}`, dataset: { kind, side } },
      s("rect", { x: box.x, y: box.y, width: box.w, height: box.h, fill: "none", stroke: COLOURS[kind],
        "stroke-width": side === "before" ? 2 : 3, "stroke-dasharray": side === "before" ? "6 4" : null,
        "vector-effect": "non-scaling-stroke" }),
      caption ? s("text", { x: box.x + font * 0.2, y: box.y > font * 1.4 ? box.y - font * 0.35 : box.y + font * 1.1,
        "font-size": font, "stroke-width": font / 5 }, caption) : null));
  }
  const rows = KINDS.flatMap((kind) => (diff.boxes[kind] || []).map((e) => h("tr", { class: `diff-${kind}`, dataset: { kind } },
    h("td", {}, kind), h("td", {}, e.label ?? `${e.label_before} → ${e.label_after}`),
    h("td", { class: "num" }, e.iou === undefined ? "" : e.iou.toFixed(2)))));
  return [h("div", { class: "stage" }, svg),
    h("p", { class: "muted" }, "Dashed: the model's box; solid: the corrected box."),
    h("table", { id: "diff-table" }, h("thead", {}, h("tr", {}, h("th", {}, "change"), h("th", {}, "class"), h("th", { class: "num" }, "IoU"))),
      h("tbody", {}, rows))];
}

function tracksDiff(t) {
  const switches = t.identity_switches.map((sw) => h("tr", { class: "diff-relabelled" },
    h("td", { class: "num" }, String(sw.frame)), h("td", {}, sw.before_track), h("td", {}, sw.previous_after_track ?? ""),
    h("td", {}, sw.after_track)));
  const frames = t.frames.map((f) => h("tr", {}, h("td", { class: "num" }, String(f.frame)),
    KINDS.map((kind) => h("td", { class: `num diff-${kind}` }, String((f[kind] || []).length)))));
  return [
    h("h2", {}, "Identity switches"),
    h("p", { class: "muted" }, "A model track whose object the corrected label follows under another id from that frame on."),
    switches.length ? h("table", { id: "switch-table" }, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "frame"),
      h("th", {}, "model track"), h("th", {}, "corrected track before"), h("th", {}, "corrected track from here"))),
    h("tbody", {}, switches))
      : h("p", { class: "muted", id: "switch-table" }, "No identity switches."),
    h("h2", {}, "Per frame"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "frame"), KINDS.map((k) => h("th", { class: "num" }, k)))),
      h("tbody", {}, frames)),
    t.frames_added.length ? h("p", {}, `Frames added: ${t.frames_added.join(", ")}`) : null,
    t.frames_removed.length ? h("p", {}, `Frames removed: ${t.frames_removed.join(", ")}`) : null];
}

function summary(sm, taskType) {
  return h("div", { class: "row", id: "diff-summary" },
    h("span", { class: `badge ${sm.changed ? "reason" : "ok"}` }, sm.changed ? "changed" : "unchanged"),
    taskType === "classification" ? null : KINDS.map((k) => h("span", { class: `diff-${k}` }, `${k} ${sm[k] ?? 0}`)),
    taskType === "track" ? h("span", {}, `identity switches ${sm.identity_switches ?? 0}`) : null);
}

/** Render the diff screen for one item; lead users may pick a vote to compare against. */
export async function showDiff(view, itemId, decisionId = null) {
  replace(view, h("p", { class: "muted" }, "Loading diff…"));
  const item = await api.item(itemId).catch(() => null);
  let diff;
  try {
    diff = await api.diff(itemId, decisionId);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const votes = (item?.votes || []).filter((v) => v.label);
    replace(view, h("div", { class: "panel", id: "diff" }, h("h1", {}, `Diff · ${itemId}`),
      h("p", { id: "diff-unavailable" }, err.code === "not_resolved"
        ? "The diff is shown once the item has its final label." : err.message),
      votes.length ? h("p", {}, "Compare with a vote: ", votes.map((v) => h("button", { type: "button",
        onclick: () => showDiff(view, itemId, v.decision_id) }, `${v.reviewer.id} (${v.action})`))) : null,
      h("a", { href: `#/items/${encodeURIComponent(itemId)}/history` }, "History & comments")));
    return null;
  }
  const body = diff.classification ? classificationDiff(diff.classification, diff)
    : diff.boxes ? boxesDiff(diff, item?.prediction?.data?.uri) : diff.tracks ? tracksDiff(diff.tracks) : null;
  replace(view, h("div", { class: "panel", id: "diff", dataset: { against: diff.against } },
    h("h1", {}, `Diff · ${itemId}`),
    h("p", { class: "muted" }, `Model label vs ${diff.against === "final" ? "final label" : diff.against}`),
    summary(diff.summary, diff.task_type), diff.classification ? null : legend(), body,
    h("p", {}, h("a", { href: `#/items/${encodeURIComponent(itemId)}/history` }, "History & comments"), " · ",
      h("a", { href: "#/review" }, "Back to review"))));
  return null;
}
