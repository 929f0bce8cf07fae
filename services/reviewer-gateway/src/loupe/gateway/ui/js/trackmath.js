// Pure edits of a tracks label's frames: identity switches and per-frame box corrections.

/** Track ids present anywhere in the frames, in first-seen order. */
export function trackIds(frames) {
  const seen = [];
  for (const frame of frames) {
    for (const box of frame.boxes) if (!seen.includes(box.track_id)) seen.push(box.track_id);
  }
  return seen;
}

/** A track id not used yet ("t<n>"). */
export function freshTrackId(frames) {
  const used = new Set(trackIds(frames));
  let n = used.size + 1;
  while (used.has(`t${n}`)) n += 1;
  return `t${n}`;
}

/**
 * Mark an identity switch: from frame `fromFrame` on, track `trackId` is really `otherId`
 * (and `otherId`, when present there, is really `trackId`). Returns new frames.
 */
export function switchIdentity(frames, fromFrame, trackId, otherId) {
  if (trackId === otherId) return frames;
  return frames.map((frame) => {
    if (frame.frame < fromFrame) return frame;
    return {
      ...frame,
      boxes: frame.boxes.map((box) => {
        if (box.track_id === trackId) return { ...box, track_id: otherId };
        if (box.track_id === otherId) return { ...box, track_id: trackId };
        return box;
      }),
    };
  });
}

/** Replace (in place) or add the box of `trackId` on frame number `frameNo`. Returns new frames. */
export function setTrackBox(frames, frameNo, trackId, box) {
  const next = { ...box, track_id: trackId };
  return frames.map((frame) => {
    if (frame.frame !== frameNo) return frame;
    const at = frame.boxes.findIndex((b) => b.track_id === trackId);
    const boxes = at < 0 ? [...frame.boxes, next] : frame.boxes.map((b, i) => (i === at ? next : b));
    return { ...frame, boxes };
  });
}

/** Remove the box of `trackId` from frame number `frameNo`. Returns new frames. */
export function removeTrackBox(frames, frameNo, trackId) {
  return frames.map((frame) =>
    frame.frame === frameNo
      ? { ...frame, boxes: frame.boxes.filter((b) => b.track_id !== trackId) }
      : frame,
  );
}
