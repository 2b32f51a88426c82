import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { h } from "./dom.js";
import { ago, iso } from "./format.js";

/** How often "… ago" texts are brought up to date: they count seconds. */
const TICK_MS = 1_000;

/** A `<time>` that says how long ago `at` was, kept current by {@link keepTimesCurrent}. */
export function agoElement(at: Timestamp | undefined): HTMLTimeElement {
  if (at === undefined) return h("time", {}, "never");
  return h("time", { datetime: iso(at), title: iso(at), "data-ago": String(timestampMs(at)) }, ago(at));
}

/** Re-labels every "… ago" on the page each second; a local clock, not a server call. */
export function keepTimesCurrent(): void {
  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll<HTMLElement>("[data-ago]")) el.textContent = ago(timestampFromMs(Number(el.dataset.ago)), now);
  }, TICK_MS);
}
