// Pure box geometry for the box and track editors. Editors work in pixels; labels may use
// pixel or normalised units, converted at the edges with toPixels / fromPixels.

export const MIN_SIZE = 4;
export const LOW_SCORE = 0.5;

const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

/** Scale factors from label units to pixels. */
export function scaleOf(image, units) {
  return units === "normalized" ? { sx: image.width, sy: image.height } : { sx: 1, sy: 1 };
}

/** A copy of a box with coordinates converted from label units to pixels. */
export function toPixels(box, image, units) {
  const { sx, sy } = scaleOf(image, units);
  return { ...box, x: box.x * sx, y: box.y * sy, w: box.w * sx, h: box.h * sy };
}

function round(value, units) {
  const digits = units === "normalized" ? 1e6 : 100;
  return Math.round(value * digits) / digits;
}

/** A copy of a pixel box converted back to label units (rounded, still inside the image). */
export function fromPixels(box, image, units) {
  const { sx, sy } = scaleOf(image, units);
  const out = { ...box };
  out.x = round(box.x / sx, units);
  out.y = round(box.y / sy, units);
  out.w = round(box.w / sx, units);
  out.h = round(box.h / sy, units);
  const maxX = units === "normalized" ? 1 : image.width;
  const maxY = units === "normalized" ? 1 : image.height;
  if (out.x + out.w > maxX) out.w = round(maxX - out.x, units);
  if (out.y + out.h > maxY) out.h = round(maxY - out.y, units);
  return out;
}

/** Move a pixel box by (dx, dy), keeping it inside the image. */
export function moveBox(box, dx, dy, image) {
  return {
    ...box,
    x: clamp(box.x + dx, 0, image.width - box.w),
    y: clamp(box.y + dy, 0, image.height - box.h),
  };
}

/** Resize a pixel box by dragging one corner handle ("nw", "ne", "sw", "se") by (dx, dy). */
export function resizeBox(box, handle, dx, dy, image) {
  let left = box.x;
  let top = box.y;
  let right = box.x + box.w;
  let bottom = box.y + box.h;
  if (handle.includes("w")) left = clamp(left + dx, 0, right - MIN_SIZE);
  if (handle.includes("e")) right = clamp(right + dx, left + MIN_SIZE, image.width);
  if (handle.includes("n")) top = clamp(top + dy, 0, bottom - MIN_SIZE);
  if (handle.includes("s")) bottom = clamp(bottom + dy, top + MIN_SIZE, image.height);
  return { ...box, x: left, y: top, w: right - left, h: bottom - top };
}

/** The box spanned by two drag points, inside the image; null when too small to be meant. */
export function rectFromDrag(x0, y0, x1, y1, image) {
  const left = clamp(Math.min(x0, x1), 0, image.width);
  const top = clamp(Math.min(y0, y1), 0, image.height);
  const right = clamp(Math.max(x0, x1), 0, image.width);
  const bottom = clamp(Math.max(y0, y1), 0, image.height);
  if (right - left < MIN_SIZE || bottom - top < MIN_SIZE) return null;
  return { x: left, y: top, w: right - left, h: bottom - top };
}

/** A default new box: a quarter of the image, centred. */
export function centredBox(image) {
  const w = Math.max(MIN_SIZE, image.width / 4);
  const h = Math.max(MIN_SIZE, image.height / 4);
  return { x: (image.width - w) / 2, y: (image.height - h) / 2, w, h };
}

/** Whether the model scored this box below the low-score threshold. */
export function isLowScore(box, threshold = LOW_SCORE) {
  return typeof box.score === "number" && box.score < threshold;
}

/** Structural equality of two JSON-like values (labels), ignoring key order. */
export function sameValue(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((item, i) => sameValue(item, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => sameValue(a[k], b[k]));
}
