// Prices cross the API as decimal strings with four places. The client keeps them as
// integer ticks (1/10000), never as floats, so a price is shown as the server sent it and
// sizes and sorting are exact (every price the API accepts fits in 2^53 ticks).

export const PLACES = 4;
const SCALE = 10 ** PLACES;
const DECIMAL = /^\s*(\d+)(?:\.(\d*))?\s*$/;

/** Ticks of a decimal string ("10.01" → 100100); null when it is not a plain
 * non-negative decimal or has more than four places. */
export function toTicks(text: string): number | null {
  const m = DECIMAL.exec(text);
  if (!m || (m[1] === "" && !m[2])) return null;
  const frac = m[2] ?? "";
  if (frac.length > PLACES) return null;
  const ticks = Number(m[1]) * SCALE + Number(frac.padEnd(PLACES, "0"));
  return Number.isSafeInteger(ticks) ? ticks : null;
}

/** The decimal string of ``ticks`` with four places, as the API writes it. */
export function fmtTicks(ticks: number): string {
  const sign = ticks < 0 ? "-" : "";
  const a = Math.abs(ticks);
  return `${sign}${Math.floor(a / SCALE)}.${String(a % SCALE).padStart(PLACES, "0")}`;
}

/** A price from the API for display: unchanged digits, "—" when there is none. */
export function fmtPrice(text: string | null | undefined): string {
  if (text == null) return "—";
  const t = toTicks(text.replace(/^-/, ""));
  return t == null ? text : (text.startsWith("-") ? "-" : "") + fmtTicks(t);
}

/** Whole numbers with thin group separators ("1 250 000"). */
export function fmtQty(n: number | null | undefined): string {
  if (n == null) return "—";
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u2009");
}
