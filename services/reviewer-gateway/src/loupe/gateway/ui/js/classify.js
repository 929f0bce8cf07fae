// Classification editor: one button per allowed class with the model's score; keys 1–9 choose.

import { h, kbdHint, pct } from "./dom.js";

/**
 * Build the editor. Returns {node, label(), changed(), reset(), command(cmd) → handled}.
 * `onChange(changed)` runs whenever the chosen class changes.
 */
export function classificationEditor(prediction, classes, onChange) {
  const model = prediction.label;
  const scores = model.scores || {};
  let chosen = model.label;
  const buttons = classes.map((name, index) => {
    const score = scores[name];
    const button = h("button", {
      type: "button", class: `class-btn${name === model.label ? " model" : ""}`,
      dataset: { class: name }, title: name === model.label ? "the model's label" : "",
      onclick: () => choose(index),
    },
    index < 9 ? kbdHint(String(index + 1)) : h("span"),
    h("span", { class: "name" }, name),
    h("span", { class: "score" }, score === undefined ? "" : pct(score)),
    h("span", { class: "bar", style: `width: ${Math.round((score || 0) * 100)}%` }));
    return button;
  });

  function paint() {
    buttons.forEach((button, i) => {
      const on = classes[i] === chosen;
      button.classList.toggle("chosen", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  function choose(index) {
    if (index >= classes.length) return false;
    chosen = classes[index];
    paint();
    onChange(chosen !== model.label);
    return true;
  }

  paint();
  const node = h("section", { class: "panel editor", "aria-label": "Classes" },
    h("h2", {}, "Class"), h("div", { class: "classes", role: "group" }, buttons));
  return {
    node,
    label: () => (chosen === model.label ? model : { kind: "classification", label: chosen, scores: {} }),
    changed: () => chosen !== model.label,
    reset: () => { chosen = model.label; paint(); },
    command: (cmd) => (cmd.type === "class" ? choose(cmd.index) : false),
  };
}
