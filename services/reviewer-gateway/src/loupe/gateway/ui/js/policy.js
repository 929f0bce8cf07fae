// Policy editor for leads: confidence thresholds (global, margin, per class) and spot-check rate.

import { api, ApiError } from "./api.js";
import { h, replace, toast, when } from "./dom.js";

const PROJECT_KEY = "loupe.policyProject";
const FIELDS = [
  ["confidence.default", "Confidence threshold", "review when the top score is below this"],
  ["confidence.margin", "Margin threshold", "review when top-1 minus top-2 is below this (empty: off)"],
  ["review.spot_check_rate", "Spot-check rate", "share of auto-accepted items sent for a later check"],
];


/** Parse a score field: a number in [0, 1], or null when empty and `nullable`. Throws on bad input. */
export function parseScore(text, name, nullable = false) {
  const trimmed = String(text).trim();
  if (trimmed === "") {
    if (nullable) return null;
    throw new Error(`${name} is required`);
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be a number from 0 to 1`);
  return value;
}

/**
 * A new policy document with the edits applied. `edits`: {default, margin, spotCheck,
 * perClass: {class: text}} (texts as typed). Throws Error with a readable message on bad input.
 */
export function applyPolicyEdits(policy, edits) {
  const perClass = {};
  for (const [name, text] of Object.entries(edits.perClass)) {
    const value = parseScore(text, `threshold for ${name}`, true);
    if (value !== null) perClass[name] = value;
  }
  return {
    ...policy,
    confidence: { ...policy.confidence, default: parseScore(edits.default, "confidence threshold"),
      margin: parseScore(edits.margin, "margin threshold", true), per_class: perClass },
    review: { ...policy.review, spot_check_rate: parseScore(edits.spotCheck, "spot-check rate") },
  };
}

function numberInput(id, value) {
  return h("input", { id, type: "text", inputmode: "decimal", value: value == null ? "" : String(value), size: 8 });
}

/** Render the policy tab into `pane`. */
export async function policyEditor(pane, me) {
  // "*" (every project) names no project to open
  const named = (me.projects || []).find((name) => name !== "*");
  const remembered = sessionStorage.getItem(PROJECT_KEY) || named || "";
  const project = h("input", { id: "policy-project", type: "text", value: remembered,
    "aria-label": "Project", size: 16, placeholder: "project" });
  const body = h("div", { id: "policy-body" });
  const load = h("button", { type: "button", id: "policy-load", onclick: () => open(project.value.trim()) }, "Load");
  project.addEventListener("keydown", (event) => { if (event.key === "Enter") open(project.value.trim()); });
  replace(pane, h("section", { class: "panel" }, h("h1", {}, "Policy"),
    h("div", { class: "row" }, h("label", {}, "Project ", project), load), body));

  async function open(name) {
    if (!name) {
      replace(body, h("p", { class: "muted" }, "Type a project name and load its policy."));
      return;
    }
    sessionStorage.setItem(PROJECT_KEY, name);
    let doc;
    try {
      doc = await api.policy(name);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      replace(body, h("p", { class: err.code === "policy_not_found" ? "muted" : "error" },
        err.code === "policy_not_found" ? `No policy published for ${name} yet.` : err.message));
      return;
    }
    render(doc);
  }

  function render(doc) {
    const { policy } = doc;
    const inputs = {
      default: numberInput("policy-default", policy.confidence.default),
      margin: numberInput("policy-margin", policy.confidence.margin),
      spotCheck: numberInput("policy-spot-check", policy.review.spot_check_rate),
    };
    const keyOf = { "confidence.default": "default", "confidence.margin": "margin", "review.spot_check_rate": "spotCheck" };
    const classInputs = Object.fromEntries(policy.label_schema.classes.map((name) =>
      [name, h("input", { type: "text", inputmode: "decimal", size: 8, dataset: { class: name },
        value: policy.confidence.per_class[name] ?? "", placeholder: "default", "aria-label": `Threshold for ${name}` })]));
    const reason = h("input", { type: "text", id: "policy-reason", maxlength: 500, placeholder: "Why this change", size: 40 });
    const error = h("p", { class: "error", role: "alert", id: "policy-error" });
    const save = h("button", { type: "submit", class: "primary", id: "policy-save" }, "Publish policy update");
    const form = h("form", { id: "policy-form" },
      h("p", { class: "muted", id: "policy-version" },
        `Version ${doc.version} · by ${doc.changed_by?.id ?? "?"} · ${when(doc.at)}${doc.reason ? ` · ${doc.reason}` : ""}`),
      h("div", { class: "policy-form" }, FIELDS.map(([path, text, hint]) => [
        h("label", { for: inputs[keyOf[path]].id, title: hint }, text), inputs[keyOf[path]]])),
      h("h2", {}, "Per-class confidence thresholds"),
      h("div", { class: "policy-form" }, Object.entries(classInputs).map(([name, input]) => [h("span", {}, name), input])),
      h("div", { class: "row", style: "margin-top: 12px" }, reason, save), error);
    form.addEventListener("input", () => { error.textContent = ""; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      let next;
      try {
        next = applyPolicyEdits(policy, {
          default: inputs.default.value, margin: inputs.margin.value, spotCheck: inputs.spotCheck.value,
          perClass: Object.fromEntries(Object.entries(classInputs).map(([n, i]) => [n, i.value])),
        });
      } catch (err) {
        error.textContent = err.message;
        return;
      }
      save.disabled = true;
      try {
        const published = await api.publishPolicy(policy.project,
          { policy: next, reason: reason.value.trim() || "edited in the lead view", expected_version: doc.version });
        toast(`Policy version ${published.version} published`);
        render(published);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) throw err;
        error.textContent = err.code === "version_conflict"
          ? "Someone published a newer version meanwhile; reload and apply your change again." : err.message;
        save.disabled = false;
      }
    });
    replace(body, form);
  }

  await open(project.value.trim());
}
