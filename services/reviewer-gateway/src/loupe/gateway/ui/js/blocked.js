// Item media the Content-Security-Policy refused. The gateway's CSP lets media load only from
// the origins the projects' policies list (review.media_origins); the browser reports every
// refusal as a `securitypolicyviolation` event, and the element that asked for the media is
// told, so it can say why instead of showing a broken image.

import { s } from "./dom.js";

export const BLOCKED_MESSAGE = "media not shown: origin not listed in the project's settings";

const MAX_WATCHED = 256; // URLs waiting for a verdict; the oldest are forgotten first
const watched = new Map(); // URL -> callback

document.addEventListener("securitypolicyviolation", (event) => {
  const directive = event.effectiveDirective || event.violatedDirective || "";
  if (!directive.startsWith("img-src") && !directive.startsWith("media-src")) return;
  // the full URL, or only its origin when the browser withholds the rest (redirects)
  for (const [url, callback] of watched) {
    if (event.blockedURI === url || event.blockedURI === originOf(url)) {
      watched.delete(url);
      callback();
    }
  }
});

/** The origin of a URL, or the URL itself when it has none (data:). */
export function originOf(url) {
  try {
    const origin = new URL(url, location.href).origin;
    return origin === "null" ? url : origin;
  } catch {
    return url;
  }
}

/** The text shown in place of media from `url` that the CSP refused. */
export function blockedText(url) {
  return `${BLOCKED_MESSAGE[0].toUpperCase()}${BLOCKED_MESSAGE.slice(1)} (${originOf(url)}).`;
}

/**
 * Call `onBlocked()` if the CSP refuses `url`; `element` is the <img> / SVG <image> loading it
 * (a load ends the watch). Only the latest watcher of a URL is called.
 */
export function whenBlocked(url, element, onBlocked) {
  if (!url || url.startsWith("data:")) return;
  const absolute = new URL(url, location.href).href;
  watched.delete(absolute);
  watched.set(absolute, onBlocked);
  if (watched.size > MAX_WATCHED) watched.delete(watched.keys().next().value);
  element.addEventListener("load", () => {
    if (watched.get(absolute) === onBlocked) watched.delete(absolute);
  }, { once: true });
}

/** The same text for an SVG stage of `image` {width, height}, fitted across its middle. */
export function svgBlockedNotice(image, url) {
  return s("text", { class: "media-blocked", x: image.width / 2, y: image.height / 2,
    "text-anchor": "middle", "font-size": image.width / 48, textLength: image.width * 0.94,
    lengthAdjust: "spacingAndGlyphs", role: "status" }, blockedText(url));
}
