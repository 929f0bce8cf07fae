// Safe DOM construction: every piece of data becomes a text node or a plain attribute value.
// Nothing in the UI assigns innerHTML / outerHTML / insertAdjacentHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name === "style") {
      node.style.cssText = String(value); // CSSOM, so a strict style-src CSP still allows it
    } else if (name === "text") {
      node.textContent = String(value);
    } else if (name === "value" && "value" in node) {
      node.value = String(value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Create an HTML element; string children become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** Create an SVG element; string children become text nodes. */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** Replace all children of a node. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A coloured pill, e.g. a routing reason or a role. */
export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

/** Format a score in [0, 1] as a percentage. */
export function pct(score) {
  return score === null || score === undefined ? "–" : `${Math.round(score * 100)}%`;
}

/** Format an ISO timestamp for people (local time, seconds precision). */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** Show a transient message in the toast area. */
export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  if (!area) return;
  const note = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  area.appendChild(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 3500);
}

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#911eb4", "#42d4f4", "#f032e6", "#f58231",
  "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3"];

/** A colour for a name: distinct palette colours in the order of `names`, else a stable hash. */
export function colourIn(names, name) {
  const index = names.indexOf(name);
  return index >= 0 && index < PALETTE.length ? PALETTE[index] : colourFor(name);
}

/** A stable colour for a string id (track ids, classes). */
export function colourFor(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 70% 45%)`;
}

/** A keyboard-shortcut hint. */
export function kbdHint(key) {
  return h("kbd", {}, key);
}
