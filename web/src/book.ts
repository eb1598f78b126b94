// One symbol's book as the /ws book stream keeps it: a snapshot, then deltas numbered
// by seq (host/services/streams.py states the rules this follows).

import { fmtTicks, toTicks } from "./num";

export type WireLevel = [string, number, number];

export interface BookMessage {
  type: "book";
  kind: "snapshot" | "delta";
  symbol: string;
  seq: number;
  bids: WireLevel[];
  asks: WireLevel[];
  source: string | null;
  depth: number | null;
  depth_tracked: number | null;
}

export interface Level {
  price: number;
  text: string;
  size: number;
  orders: number;
}

export interface LadderRow {
  price: number;
  text: string;
  bid: Level | null;
  ask: Level | null;
  /** Inside the levels the source tracks (the FPGA's top N); always true at full depth. */
  tracked: boolean;
}

export type Applied = "applied" | "stale" | "gap";

export class Book {
  seq = 0;
  source: string | null = null;
  depthTracked: number | null = null;
  private bids = new Map<number, Level>();
  private asks = new Map<number, Level>();
  private started = false;

  constructor(readonly symbol: string) {}

  /** Apply a stream message: a snapshot always; a delta only when it is the next seq
   * (an old one is skipped, one past a hole asks the caller for a snapshot). */
  apply(msg: BookMessage): Applied {
    if (msg.kind === "snapshot") {
      this.bids.clear();
      this.asks.clear();
      this.started = true;
    } else if (!this.started) {
      return "gap";
    } else if (msg.seq <= this.seq) {
      return "stale";
    } else if (msg.seq > this.seq + 1) {
      return "gap";
    }
    merge(this.bids, msg.bids);
    merge(this.asks, msg.asks);
    this.seq = msg.seq;
    this.source = msg.source;
    this.depthTracked = msg.depth_tracked;
    return "applied";
  }

  /** Levels best first. */
  side(which: "bid" | "ask"): Level[] {
    const levels = [...(which === "bid" ? this.bids : this.asks).values()];
    return levels.sort((a, b) => (which === "bid" ? b.price - a.price : a.price - b.price));
  }

  /** The level at ``price`` on one side. */
  at(which: "bid" | "ask", price: number): Level | undefined {
    return (which === "bid" ? this.bids : this.asks).get(price);
  }

  /** Prices of the best ``n`` levels of a side (the source's tracked ones, when it has N). */
  top(which: "bid" | "ask", n: number): Set<number> {
    return new Set(this.side(which).slice(0, n).map((lv) => lv.price));
  }

  prices(): number[] {
    return [...this.bids.keys(), ...this.asks.keys()];
  }
}

/** The price grid of a ladder: the largest step every listed price sits on (their
 * differences' greatest common divisor), 0.01 when there is nothing to go by. */
export function inferTick(prices: number[], fallback = 100): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let g = 0;
  for (const p of prices) g = gcd(Math.abs(p - prices[0]), g);
  return g || fallback;
}

/** The rows of a ladder: ``count`` prices one tick apart from ``top`` down, each with
 * the book's levels there. */
export function ladderRows(book: Book, top: number, tick: number, count: number): LadderRow[] {
  const tracked = book.depthTracked;
  const topBids = tracked ? book.top("bid", tracked) : null;
  const topAsks = tracked ? book.top("ask", tracked) : null;
  const rows: LadderRow[] = [];
  for (let i = 0; i < count; i++) {
    const price = top - i * tick;
    if (price <= 0) break;
    const bid = book.at("bid", price) ?? null;
    const ask = book.at("ask", price) ?? null;
    rows.push({ price, text: fmtTicks(price), bid, ask,
                tracked: (!bid || !topBids || topBids.has(price)) && (!ask || !topAsks || topAsks.has(price)) });
  }
  return rows;
}

function merge(side: Map<number, Level>, changes: WireLevel[]): void {
  for (const [text, size, orders] of changes) {
    const price = toTicks(text);
    if (price == null) continue;
    if (size === 0) side.delete(price);
    else side.set(price, { price, text, size, orders });
  }
}
