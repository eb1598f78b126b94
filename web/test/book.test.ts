import { describe, expect, it } from "vitest";
import { Book, type BookMessage, inferTick, ladderRows, type WireLevel } from "../src/book";

const msg = (kind: "snapshot" | "delta", seq: number, bids: WireLevel[], asks: WireLevel[],
             depth_tracked: number | null = null): BookMessage =>
  ({ type: "book", kind, symbol: "AAPL", seq, bids, asks, source: "feed", depth: null, depth_tracked });

describe("the book stream", () => {
  it("applies deltas in seq order, removes size 0, skips old ones, asks on a hole", () => {
    const b = new Book("AAPL");
    expect(b.apply(msg("delta", 5, [], []))).toBe("gap");          // nothing before a snapshot
    expect(b.apply(msg("snapshot", 10, [["10.0000", 100, 1], ["9.9900", 200, 2]],
                       [["10.0100", 300, 1]]))).toBe("applied");
    expect(b.apply(msg("delta", 11, [["10.0000", 0, 0], ["9.9800", 50, 1]], []))).toBe("applied");
    expect(b.side("bid").map((l) => [l.text, l.size])).toEqual([["9.9900", 200], ["9.9800", 50]]);
    expect(b.apply(msg("delta", 11, [["9.9900", 0, 0]], []))).toBe("stale");
    expect(b.side("bid")).toHaveLength(2);
    expect(b.apply(msg("delta", 13, [["9.9900", 0, 0]], []))).toBe("gap");
    expect(b.seq).toBe(11);
    // a removal of a level the book never held is nothing to do
    expect(b.apply(msg("delta", 12, [["1.0000", 0, 0]], []))).toBe("applied");
    // a snapshot replaces whatever was there
    b.apply(msg("snapshot", 40, [["9.5000", 10, 1]], []));
    expect(b.side("bid").map((l) => l.text)).toEqual(["9.5000"]);
    expect(b.side("ask")).toEqual([]);
  });

  it("matches a book rebuilt from scratch after a random stream", () => {
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const b = new Book("AAPL");
    const truth = { bid: new Map<string, number>(), ask: new Map<string, number>() };
    b.apply(msg("snapshot", 1, [], []));
    for (let seq = 2; seq < 3000; seq++) {
      const bids: WireLevel[] = [], asks: WireLevel[] = [];
      for (let k = rnd(4); k > 0; k--) {
        const side = rnd(2) ? "bid" : "ask";
        const price = (side === "bid" ? 9000 + rnd(100) : 9100 + rnd(100)) / 100;
        const text = price.toFixed(4);
        const size = rnd(3) === 0 ? 0 : 100 * (1 + rnd(20));
        (side === "bid" ? bids : asks).push([text, size, 1]);
        if (size) truth[side].set(text, size); else truth[side].delete(text);
      }
      expect(b.apply(msg("delta", seq, bids, asks))).toBe("applied");
    }
    for (const side of ["bid", "ask"] as const) {
      const got = new Map(b.side(side).map((l) => [l.text, l.size]));
      expect(got).toEqual(truth[side]);
      const prices = b.side(side).map((l) => l.price);
      const sorted = [...prices].sort((x, y) => (side === "bid" ? y - x : x - y));
      expect(prices).toEqual(sorted);
    }
  });
});

describe("the ladder", () => {
  it("finds the price grid the levels sit on", () => {
    expect(inferTick([1_900_700, 1_900_500, 1_901_000])).toBe(100);
    expect(inferTick([100_000, 100_005])).toBe(5);
    expect(inferTick([100_000])).toBe(100);           // one level: 0.01 by default
    expect(inferTick([])).toBe(100);
  });

  it("lays out one row per tick with each side's level and marks the tracked top N", () => {
    const b = new Book("AAPL");
    b.apply(msg("snapshot", 1, [["10.0000", 100, 1], ["9.9800", 200, 2], ["9.9700", 5, 1]],
                [["10.0200", 300, 1], ["10.0300", 7, 1]], 2));
    const rows = ladderRows(b, 100_300, 100, 7);
    expect(rows.map((r) => r.text)).toEqual(["10.0300", "10.0200", "10.0100", "10.0000",
                                             "9.9900", "9.9800", "9.9700"]);
    expect(rows.map((r) => r.ask?.size ?? null)).toEqual([7, 300, null, null, null, null, null]);
    expect(rows.map((r) => r.bid?.size ?? null)).toEqual([null, null, null, 100, null, 200, 5]);
    // the source tracks the top 2 each side: the third bid is outside
    expect(rows.map((r) => r.tracked)).toEqual([true, true, true, true, true, true, false]);
    expect(ladderRows(b, 200, 100, 5).map((r) => r.text)).toEqual(["0.0200", "0.0100"]);
  });
});
