// How item media is loaded: only images, only from safe sources (see docs/ui.md "Item media").

const SAFE_DATA = /^data:image\/(png|jpeg|gif|webp|svg\+xml)[;,]/i;

/** The URL to show for a DataRef uri, or null when the UI will not load it. */
export function mediaUrl(uri, frame = null) {
  if (typeof uri !== "string" || uri.length === 0) return null;
  let resolved = uri;
  if (frame !== null) {
    resolved = uri.replace(/\{frame(?::(\d+))?\}/g, (_, width) =>
      width ? String(frame).padStart(Number(width), "0") : String(frame));
  }
  if (SAFE_DATA.test(resolved)) return resolved;
  if (resolved.startsWith("/") && !resolved.startsWith("//")) return resolved;
  try {
    const url = new URL(resolved);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}
