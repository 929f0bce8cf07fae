// An SVG stage drawing pixel boxes over an image, with select / move / resize / draw-to-add.

import { svgBlockedNotice, whenBlocked } from "./blocked.js";
import { colourFor, s } from "./dom.js";
import { isLowScore, moveBox, rectFromDrag, resizeBox } from "./geometry.js";

const HANDLES = ["nw", "ne", "sw", "se"];

/** Caption size in image units: about 14 screen pixels when the image fills the stage. */
export function labelFontSize(image) {
  return Math.max(image.width / 52, image.height / 40);
}

/**
 * Create a stage. `options`: image {width,height}, href (image URL or null), lowThreshold,
 * caption(box) → text, colour(box) → css colour, onSelect(index|null), onChange(index, box),
 * onDraw(rect). Returns {node, render(boxes, selected, href?)}.
 */
export function createStage(options) {
  const { image } = options;
  const svg = s("svg", { viewBox: `0 0 ${image.width} ${image.height}`, class: "stage-svg",
    role: "img", "aria-label": "Item image with boxes" });
  const backdrop = s("rect", { x: 0, y: 0, width: image.width, height: image.height, fill: "#3a414d" });
  const picture = s("image", { x: 0, y: 0, width: image.width, height: image.height,
    preserveAspectRatio: "none" });
  const layer = s("g", { class: "boxes" });
  const draft = s("rect", { class: "draft", fill: "none", stroke: "#fff", "stroke-dasharray": "4 3",
    "vector-effect": "non-scaling-stroke", visibility: "hidden" });
  svg.append(backdrop, picture, layer, draft);
  let boxes = [];
  let drag = null;
  let shownHref = null;
  let notice = null; // says why the CSP refused the current image
  const handleSize = Math.max(6, Math.min(image.width, image.height) / 60);
  const fontSize = labelFontSize(image);

  function point(event) {
    const matrix = svg.getScreenCTM().inverse();
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix);
    return { x: p.x, y: p.y };
  }

  function boxNode(box, index, selected) {
    const colour = (options.colour || (() => colourFor(box.label)))(box);
    const low = isLowScore(box, options.lowThreshold);
    const group = s("g", { class: `box${low ? " low" : ""}${selected ? " selected" : ""}`,
      dataset: { index: String(index), label: box.label, track: box.track_id ?? "" } });
    const body = s("rect", { class: "body", x: box.x, y: box.y, width: box.w, height: box.h,
      stroke: colour, dataset: { part: "body" } });
    const caption = options.caption ? options.caption(box) : box.label;
    const textY = box.y > fontSize * 1.4 ? box.y - fontSize * 0.35 : box.y + fontSize * 1.1;
    group.append(body, s("text", { x: box.x + fontSize * 0.2, y: textY, "font-size": fontSize,
      "stroke-width": fontSize / 5 }, caption));
    if (selected) {
      for (const handle of HANDLES) {
        const hx = handle.includes("w") ? box.x : box.x + box.w;
        const hy = handle.includes("n") ? box.y : box.y + box.h;
        group.append(s("rect", { class: "handle", x: hx - handleSize / 2, y: hy - handleSize / 2,
          width: handleSize, height: handleSize, dataset: { part: "handle", handle },
          style: `cursor: ${handle}-resize` }));
      }
    }
    return group;
  }

  function render(nextBoxes, selected, href) {
    boxes = nextBoxes;
    if (href !== undefined && href !== shownHref) {
      shownHref = href;
      notice?.remove();
      notice = null;
      if (href) picture.setAttribute("href", href); else picture.removeAttribute("href");
      whenBlocked(href, picture, () => {
        if (shownHref !== href) return;
        notice = svgBlockedNotice(image, href);
        svg.insertBefore(notice, layer);
      });
    }
    layer.replaceChildren(...boxes.map((box, i) => boxNode(box, i, i === selected)));
  }

  svg.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const target = event.target;
    const group = target.closest ? target.closest("g.box") : null;
    const start = point(event);
    if (group) {
      const index = Number(group.dataset.index);
      options.onSelect(index);
      const part = target.dataset.part;
      drag = { mode: part === "handle" ? "resize" : "move", handle: target.dataset.handle,
        index, start, origin: boxes[index], moved: false };
    } else {
      options.onSelect(null);
      drag = { mode: "draw", start };
    }
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });

  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const p = point(event);
    const dx = p.x - drag.start.x;
    const dy = p.y - drag.start.y;
    if (drag.mode === "draw") {
      const rect = rectFromDrag(drag.start.x, drag.start.y, p.x, p.y, image);
      draft.setAttribute("visibility", rect ? "visible" : "hidden");
      if (rect) for (const [k, v] of Object.entries({ x: rect.x, y: rect.y, width: rect.w, height: rect.h })) draft.setAttribute(k, v);
      return;
    }
    drag.moved = true;
    const box = drag.mode === "move" ? moveBox(drag.origin, dx, dy, image)
      : resizeBox(drag.origin, drag.handle, dx, dy, image);
    options.onChange(drag.index, box, { live: true });
  });

  function finish(event) {
    if (!drag) return;
    const p = point(event);
    if (drag.mode === "draw") {
      draft.setAttribute("visibility", "hidden");
      const rect = rectFromDrag(drag.start.x, drag.start.y, p.x, p.y, image);
      if (rect) options.onDraw(rect);
    } else if (drag.moved) {
      options.onChange(drag.index, boxes[drag.index], { live: false });
    }
    drag = null;
  }
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", finish);
  return { node: svg, render };
}
