import { describe, expect, it } from "vitest";
import { checkOrder, orderSchema, priceFields } from "../src/orderform";

// the OrderIn schema as FastAPI publishes it (tests/host/api/test_web.py checks the
// live document has these fields), with a type the client has never seen
const doc = { components: { schemas: { OrderIn: { properties: {
  symbol: { type: "string", pattern: "^[A-Z0-9][A-Z0-9.\\-]{0,7}$" },
  side: { type: "string", enum: ["buy", "sell"] },
  type: { type: "string", enum: ["market", "limit", "stop", "stop_limit"] },
  tif: { type: "string", enum: ["day", "gtc", "ioc", "fok"], default: "day" },
  qty: { type: "integer", maximum: 1e9, exclusiveMinimum: 0 },
  price: { anyOf: [{ anyOf: [{ type: "number", maximum: 1e9, exclusiveMinimum: 0 }, { type: "string" }] }, { type: "null" }] },
  stop_price: { anyOf: [{ anyOf: [{ type: "number", maximum: 1e9, exclusiveMinimum: 0 }, { type: "string" }] }, { type: "null" }] },
} } } } };

const base = { symbol: "AAPL", side: "buy", type: "limit", tif: "day", qty: "100", price: "190.07", stop_price: "" };

describe("order entry from the schema", () => {
  const schema = orderSchema(doc);

  it("takes its choices and bounds from the document", () => {
    expect(schema.types).toEqual(["market", "limit", "stop", "stop_limit"]);
    expect(schema.tifDefault).toBe("day");
    expect(schema.maxQty).toBe(1e9);
    expect(schema.maxPriceTicks).toBe(1e13);
    expect(priceFields("stop_limit")).toEqual({ price: true, stop_price: true });
    expect(priceFields("market")).toEqual({ price: false, stop_price: false });
  });

  it("sends the price as the typed decimal string, never a float", () => {
    expect(checkOrder(schema, base)).toEqual({ body: { symbol: "AAPL", side: "buy", type: "limit",
                                                       tif: "day", qty: 100, price: "190.07" } });
    expect(checkOrder(schema, { ...base, type: "market", price: "5" })).toEqual(
      { body: { symbol: "AAPL", side: "buy", type: "market", tif: "day", qty: 100 } });
  });

  it("names each field the server would refuse", () => {
    const bad = (d: Partial<typeof base>) => {
      const r = checkOrder(schema, { ...base, ...d });
      return "errors" in r ? r.errors : {};
    };
    expect(Object.keys(bad({ qty: "0" }))).toEqual(["qty"]);
    expect(Object.keys(bad({ qty: "1.5" }))).toEqual(["qty"]);
    expect(Object.keys(bad({ qty: "1000000001" }))).toEqual(["qty"]);
    expect(bad({ price: "" }).price).toMatch(/needs a price/);
    expect(bad({ price: "1.00001" }).price).toMatch(/4 places/);
    expect(bad({ price: "0" }).price).toMatch(/range/);
    expect(bad({ price: "1000000000.0001" }).price).toMatch(/range/);
    expect(bad({ type: "stop", stop_price: "" }).stop_price).toMatch(/stop price/);
    expect(Object.keys(bad({ type: "stop_limit", price: "", stop_price: "" })).sort())
      .toEqual(["price", "stop_price"]);
    expect(Object.keys(bad({ type: "iceberg" }))).toEqual(["type"]);
    expect(Object.keys(bad({ symbol: "aapl" }))).toEqual(["symbol"]);
  });
});
