// Version and commit are stamped in by build/compile.ts (--define); a run from
// source reports "dev".
declare const CRIB_VERSION: string | undefined;
declare const CRIB_COMMIT: string | undefined;

export const VERSION: string = typeof CRIB_VERSION === "string" ? CRIB_VERSION : "0.0.0-dev";
export const COMMIT: string = typeof CRIB_COMMIT === "string" ? CRIB_COMMIT : "unknown";
/** The CRI API version crib speaks. */
export const CRI_API_VERSION = "v1";
export const RUNTIME_NAME = "crib";
export const BUILD = `${VERSION} (${COMMIT})`;
