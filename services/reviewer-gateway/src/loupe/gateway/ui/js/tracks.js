// Track editor: frame scrubber, per-track boxes with ids, identity switches, per-frame fixes.

import { classSelect } from "./boxes.js";
import { createStage } from "./boxstage.js";
import { colourIn, h, kbdHint, pct, replace } from "./dom.js";
import { centredBox, fromPixels, isLowScore, moveBox, toPixels } from "./geometry.js";
import { mediaUrl } from "./media.js";
import { freshTrackId, removeTrackBox, setTrackBox, switchIdentity, trackIds } from "./trackmath.js";

/** The editor for a track label without frames: nothing to edit, approve or correct as a whole. */
function emptyTracks(model) {
  return {
    node: h("section", { class: "panel editor", id: "stage" }, h("p", { class: "muted" }, "The model reported no frames.")),
    label: () => model, changed: () => false, reset: () => {}, command: () => false,
  };
}

/** Build the editor for a track task. Same interface as the classification editor. */
export function tracksEditor(task, classes, onChange) {
  const model = task.prediction.label;
  if (!model.frames.length) return emptyTracks(model);
  const { image, units } = model;
  let frames = model.frames;
  const modelTracks = trackIds(model.frames);
  let position = 0;
  let selected = null; // track id on the current frame
  let switches = [];
  let dirty = false;

  const stage = createStage({
    image,
    caption: (box) => `${box.track_id} · ${box.label}${typeof box.score === "number" ? ` ${pct(box.score)}` : ""}`,
    colour: (box) => colourIn(modelTracks, box.track_id),
    onSelect: (index) => { selected = index === null ? null : pixelBoxes()[index].track_id; paint(); },
    onChange: (index, box, { live }) => {
      const { track_id: id, label, x, y, w, h: height } = fromPixels(box, image, units);
      frames = setTrackBox(frames, current().frame, id, { label, x, y, w, h: height });
      if (live) renderStage(); else edited();
    },
    onDraw: (rect) => addTrackBox(rect),
  });
  const scrubber = h("input", { type: "range", id: "frame-scrubber", min: 0, max: Math.max(0, frames.length - 1),
    value: 0, step: 1, "aria-label": "Frame", oninput: () => goTo(Number(scrubber.value)) });
  const frameLabel = h("span", { id: "frame-number", class: "lease" });
  const tools = h("div", { class: "row", id: "track-tools" });
  const list = h("ol", { class: "box-list", id: "track-list" });
  const switchList = h("ul", { id: "switch-list", class: "muted" });
  const node = h("section", { class: "panel editor", "aria-label": "Tracks" },
    h("div", { class: "stage", id: "stage" }, stage.node),
    h("div", { class: "scrubber" },
      h("button", { type: "button", id: "prev-frame", onclick: () => goTo(position - 1), "aria-label": "Previous frame" }, "◀"),
      scrubber,
      h("button", { type: "button", id: "next-frame", onclick: () => goTo(position + 1), "aria-label": "Next frame" }, "▶"),
      frameLabel),
    tools, list, switchList);

  const current = () => frames[position];
  const pixelBoxes = () => current().boxes.map((b) => toPixels(b, image, units));

  function label() {
    return { kind: "track", image, units, frames };
  }

  function edited() {
    dirty = true;
    paint();
    onChange(true);
  }

  function renderStage() {
    const boxes = pixelBoxes();
    const index = boxes.findIndex((b) => b.track_id === selected);
    stage.render(boxes, index < 0 ? null : index, mediaUrl(task.prediction.data?.uri, current().frame));
  }

  function goTo(next) {
    position = Math.min(Math.max(next, 0), frames.length - 1);
    if (!current().boxes.some((b) => b.track_id === selected)) selected = null;
    paint();
  }

  function addTrackBox(rect) {
    const px = { label: classes[0], ...rect };
    const { label: name, x, y, w, h: height } = fromPixels(px, image, units);
    selected = freshTrackId(frames);
    frames = setTrackBox(frames, current().frame, selected, { label: name, x, y, w, h: height });
    edited();
  }

  function mutateSelected(change) {
    if (selected === null) return false;
    const box = current().boxes.find((b) => b.track_id === selected);
    const { track_id: _, ...rest } = change(box);
    frames = setTrackBox(frames, current().frame, selected, rest);
    edited();
    return true;
  }

  function applySwitch(otherId) {
    if (selected === null || !otherId) return;
    const fromFrame = current().frame;
    frames = switchIdentity(frames, fromFrame, selected, otherId);
    switches = [...switches, { from: selected, to: otherId, frame: fromFrame }];
    selected = otherId;
    edited();
  }

  function switchTools() {
    const others = trackIds(frames).filter((id) => id !== selected);
    const fresh = freshTrackId(frames);
    const target = h("select", { id: "switch-to", "aria-label": "Really the track" },
      others.map((id) => h("option", { value: id }, id)), h("option", { value: fresh }, `${fresh} (new track)`));
    return h("span", { class: "row" },
      h("span", {}, `From frame ${current().frame}, ${selected} is really`), target,
      h("button", { type: "button", id: "apply-switch", onclick: () => applySwitch(target.value) }, "Mark identity switch"));
  }

  function paint() {
    scrubber.value = String(position);
    frameLabel.textContent = `frame ${current().frame} (${position + 1}/${frames.length})`;
    renderStage();
    list.replaceChildren(...current().boxes.map((box) => h("li", {
      class: `${box.track_id === selected ? "selected" : ""} ${isLowScore(box) ? "low" : ""}`.trim(),
      dataset: { track: box.track_id, label: box.label }, onclick: () => { selected = box.track_id; paint(); } },
    h("span", { class: "swatch", style: `background: ${colourIn(modelTracks, box.track_id)}` }),
    h("strong", {}, box.track_id), h("span", {}, box.label),
    h("span", { class: "score" }, typeof box.score === "number" ? pct(box.score) : ""))));
    replace(tools,
      h("button", { type: "button", id: "add-box", onclick: () => addTrackBox(centredBox(image)) }, "New track box ", kbdHint("N")),
      selected === null ? h("span", { class: "muted" }, "Select a track box to fix it or mark an identity switch.")
        : [classSelect(classes, current().boxes.find((b) => b.track_id === selected).label,
          (name) => mutateSelected((b) => ({ ...b, label: name, score: undefined })), "box-class"),
        h("button", { type: "button", id: "delete-box", onclick: () => command({ type: "delete" }) }, "Delete on this frame"),
        switchTools()]);
    switchList.replaceChildren(...switches.map((s) => h("li", {}, `identity switch at frame ${s.frame}: ${s.from} → ${s.to}`)));
  }

  function command(cmd) {
    switch (cmd.type) {
      case "class":
        return cmd.index < classes.length && mutateSelected((b) => ({ ...b, label: classes[cmd.index], score: undefined }));
      case "delete":
        if (selected === null) return false;
        frames = removeTrackBox(frames, current().frame, selected);
        selected = null;
        edited();
        return true;
      case "add": addTrackBox(centredBox(image)); return true;
      case "escape": selected = null; paint(); return true;
      case "cycle": {
        const ids = current().boxes.map((b) => b.track_id);
        if (!ids.length) return false;
        const at = ids.indexOf(selected);
        selected = at < 0 ? ids[0] : ids[(at + (cmd.back ? ids.length - 1 : 1)) % ids.length];
        paint();
        return true;
      }
      case "nudge":
        if (selected === null) { if (cmd.dx) goTo(position + Math.sign(cmd.dx)); return cmd.dx !== 0; }
        return mutateSelected((b) => {
          const px = moveBox(toPixels(b, image, units), cmd.dx, cmd.dy, image);
          const { x, y, w, h: height } = fromPixels(px, image, units);
          return { label: b.label, x, y, w, h: height };
        });
      default: return false;
    }
  }

  paint();
  return {
    node, label, command,
    changed: () => dirty,
    reset: () => { frames = model.frames; position = 0; selected = null; switches = []; dirty = false; paint(); },
  };
}
