// Keyboard shortcuts of the review screen: a pure mapping from key events to commands.

export const SHORTCUTS = [
  ["1 – 9", "choose class (classification) / relabel the selected box"],
  ["A", "approve the model's label"],
  ["R", "reject the item (cannot be labelled)"],
  ["S", "skip (give the task back)"],
  ["E", "escalate to the next tier"],
  ["Enter", "submit the chosen action (Ctrl+Enter from the comment box)"],
  ["C", "focus the comment box (Esc leaves it)"],
  ["Delete", "delete the selected box"],
  ["N", "add a box"],
  ["Arrows", "move the selected box (Shift: 10 px); on tracks ← → change frame when none is selected"],
  ["Tab", "select the next box"],
  ["?", "show / hide this help"],
];

const ACTION_KEYS = { a: "approve", r: "reject", s: "skip", e: "escalate" };

function typingInto(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  return tag === "textarea" || tag === "select" || (tag === "input" && target.type !== "range")
    || target.isContentEditable === true;
}

/**
 * Translate a keydown event into a review command, or null when the key is not a shortcut.
 * Commands: {type: "class", index}, {type: "action", action}, {type: "submit"}, {type: "help"},
 * {type: "comment"}, {type: "delete"}, {type: "add"}, {type: "nudge", dx, dy}, {type: "cycle"},
 * {type: "escape"}.
 */
export function commandFor(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return null;
  const key = event.key;
  if (key === "Escape") return { type: "escape" };
  if (typingInto(event.target)) return null;
  const onSlider = event.target?.tagName?.toLowerCase() === "input" && event.target.type === "range";
  if (onSlider && key.startsWith("Arrow")) return null; // the slider moves itself
  if (/^[1-9]$/.test(key)) return { type: "class", index: Number(key) - 1 };
  const lower = key.length === 1 ? key.toLowerCase() : key;
  if (ACTION_KEYS[lower]) return { type: "action", action: ACTION_KEYS[lower] };
  if (key === "Enter") return { type: "submit" };
  if (key === "?") return { type: "help" };
  if (lower === "c") return { type: "comment" };
  if (lower === "n") return { type: "add" };
  if (key === "Delete" || key === "Backspace") return { type: "delete" };
  if (key === "Tab") return { type: "cycle", back: event.shiftKey };
  const step = event.shiftKey ? 10 : 1;
  const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (arrows[key]) return { type: "nudge", dx: arrows[key][0], dy: arrows[key][1] };
  return null;
}
