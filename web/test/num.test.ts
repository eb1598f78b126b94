import { describe, expect, it } from "vitest";
import { fmtPrice, fmtQty, fmtTicks, toTicks } from "../src/num";

describe("decimal prices as ticks", () => {
  it("reads what the API writes and what a trader types", () => {
    expect(toTicks("190.0700")).toBe(1_900_700);
    expect(toTicks("10.01")).toBe(100_100);
    expect(toTicks("0.0001")).toBe(1);
    expect(toTicks("42")).toBe(420_000);
    expect(toTicks(" 7.5 ")).toBe(75_000);
  });

  it("refuses a fifth place, signs, exponents and junk rather than rounding", () => {
    for (const bad of ["1.23456", "-1", "1e3", "", ".", "abc", "1,5", "0x10", "Infinity"]) {
      expect(toTicks(bad), bad).toBeNull();
    }
  });

  it("never goes through a float: 0.1 + 0.2 style sums stay exact", () => {
    expect(fmtTicks(toTicks("0.1")! + toTicks("0.2")!)).toBe("0.3000");
    // the largest price the API takes (1e9) keeps every tick
    expect(fmtTicks(toTicks("999999999.9999")!)).toBe("999999999.9999");
  });

  it("round-trips every tick of a random sample", () => {
    let seed = 12345;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const ticks = seed % 10_000_000_000;
      expect(toTicks(fmtTicks(ticks))).toBe(ticks);
    }
  });

  it("formats for display with fixed places and grouped sizes", () => {
    expect(fmtPrice("12.5")).toBe("12.5000");
    expect(fmtPrice("-0.0500")).toBe("-0.0500");
    expect(fmtPrice(null)).toBe("—");
    expect(fmtTicks(-500)).toBe("-0.0500");
    expect(fmtQty(1_250_000)).toBe("1\u2009250\u2009000");
    expect(fmtQty(999)).toBe("999");
  });
});
