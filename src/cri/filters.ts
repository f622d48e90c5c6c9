// Label selectors as the CRI list filters use them: every key must match exactly.
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** Stream responses are sent in batches so a big node needs no huge message. */
export const STREAM_BATCH = 100;

export function batches<T>(items: T[], size = STREAM_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
