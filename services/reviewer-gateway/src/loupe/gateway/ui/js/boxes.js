// Bounding-box editor: boxes over the image; select, move, resize, add, delete, relabel.

import { createStage } from "./boxstage.js";
import { colourIn, h, kbdHint, pct, replace } from "./dom.js";
import { centredBox, fromPixels, isLowScore, moveBox, toPixels } from "./geometry.js";
import { mediaUrl } from "./media.js";

/** Strip editor bookkeeping from a pixel box and convert it to label units. */
function outBox(entry, image, units) {
  if (!entry.touched) return entry.orig;
  const { label, x, y, w, h: height } = fromPixels(entry.box, image, units);
  return { label, x, y, w, h: height };
}

/** Class picker shared by the box and track editors. */
export function classSelect(classes, value, onPick, id) {
  const select = h("select", { id, "aria-label": "Class of the selected box",
    onchange: () => onPick(select.value) },
  classes.map((name, i) => h("option", { value: name }, i < 9 ? `${i + 1} · ${name}` : name)));
  select.value = value;
  return select;
}

/** Build the editor for a bbox task. Same interface as the classification editor. */
export function boxesEditor(task, classes, onChange) {
  const model = task.prediction.label;
  const { image, units } = model;
  const initial = () => model.boxes.map((orig) => ({ box: toPixels(orig, image, units), orig, touched: false }));
  let entries = initial();
  let selected = null;
  let dirty = false;

  const stage = createStage({
    image,
    caption: (box) => (typeof box.score === "number"
      ? `${box.label} ${pct(box.score)}${isLowScore(box) ? " · low" : ""}` : box.label),
    colour: (box) => colourIn(classes, box.label),
    onSelect: (index) => { selected = index; paint(); },
    onChange: (index, box, { live }) => {
      entries[index] = { ...entries[index], box, touched: true };
      if (live) stage.render(entries.map((e) => e.box), selected); else edited();
    },
    onDraw: (rect) => addBox(rect),
  });
  const list = h("ol", { class: "box-list", id: "box-list" });
  const picker = h("div", { class: "row", id: "box-tools" });
  const node = h("section", { class: "panel editor", "aria-label": "Boxes" },
    h("div", { class: "stage", id: "stage" }, stage.node),
    h("p", { class: "muted" }, "Drag a box to move it, its corners to resize, empty space to draw a new one. ",
      "Dashed orange boxes: the model scored them below 50%."),
    picker, list);

  function label() {
    return { kind: "bbox", image, units, boxes: entries.map((e) => outBox(e, image, units)) };
  }

  function edited() {
    dirty = true;
    paint();
    onChange(true);
  }

  function addBox(rect) {
    const name = selected !== null ? entries[selected].box.label : classes[0];
    entries = [...entries, { box: { label: name, ...rect }, orig: null, touched: true }];
    selected = entries.length - 1;
    edited();
  }

  function relabel(name) {
    if (selected === null) return false;
    entries[selected] = { ...entries[selected], box: { ...entries[selected].box, label: name, score: undefined }, touched: true };
    edited();
    return true;
  }

  function remove() {
    if (selected === null) return false;
    entries = entries.filter((_, i) => i !== selected);
    selected = null;
    edited();
    return true;
  }

  function paint() {
    stage.render(entries.map((e) => e.box), selected, mediaUrl(task.prediction.data?.uri));
    list.replaceChildren(...entries.map((entry, i) => {
      const box = entry.box;
      const low = isLowScore(box);
      return h("li", { class: `${i === selected ? "selected" : ""} ${low ? "low" : ""}`.trim(),
        dataset: { index: String(i), label: box.label }, onclick: () => { selected = i; paint(); } },
      h("span", { class: "swatch", style: `background: ${colourIn(classes, box.label)}` }),
      h("span", { class: "name" }, box.label),
      h("span", { class: "score" }, typeof box.score === "number" ? pct(box.score) : entry.orig ? "" : "new"),
      low ? h("span", { class: "badge reason" }, "low score") : null,
      entry.touched && entry.orig ? h("span", { class: "badge" }, "edited") : null);
    }));
    replace(picker,
      h("button", { type: "button", id: "add-box", onclick: () => addBox(centredBox(image)) }, "Add box ", kbdHint("N")),
      selected === null ? h("span", { class: "muted" }, "Select a box to relabel or delete it.")
        : [classSelect(classes, entries[selected].box.label, relabel, "box-class"),
          h("button", { type: "button", id: "delete-box", onclick: remove }, "Delete ", kbdHint("Del"))]);
  }

  function command(cmd) {
    switch (cmd.type) {
      case "class": return cmd.index < classes.length && relabel(classes[cmd.index]);
      case "delete": return remove();
      case "add": addBox(centredBox(image)); return true;
      case "escape": selected = null; paint(); return true;
      case "cycle":
        if (!entries.length) return false;
        selected = selected === null ? 0 : (selected + (cmd.back ? entries.length - 1 : 1)) % entries.length;
        paint();
        return true;
      case "nudge":
        if (selected === null) return false;
        entries[selected] = { ...entries[selected], box: moveBox(entries[selected].box, cmd.dx, cmd.dy, image), touched: true };
        edited();
        return true;
      default: return false;
    }
  }

  paint();
  return {
    node, label, command,
    changed: () => dirty,
    reset: () => { entries = initial(); selected = null; dirty = false; paint(); },
  };
}
