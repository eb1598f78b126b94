import { describe, expect, it } from "vitest";
import { checkModify, checkOrder, fieldsFor, type Modifiable, modifyFields, orderSchema, priorityText } from "../src/orderform";

// the OrderIn and ModifyIn schemas as FastAPI publishes them (tests/host/api/test_web.py
// checks the live document has these parts and that x-type-fields is the server's table)
const price = (description = "") => ({ anyOf: [{ anyOf: [{ type: "number", maximum: 1e9, exclusiveMinimum: 0 },
  { type: "string" }] }, { type: "null" }], description });
const whole = (min: Record<string, number>, maximum = 1e9) =>
  ({ anyOf: [{ type: "integer", maximum, ...min }, { type: "null" }] });
const fields = (required: string[], optional: string[] = []) =>
  ({ required, allowed: [...required, ...optional].sort() });
const BRACKET = ["take_profit", "stop_loss"];
const doc = { components: { schemas: {
  OrderIn: {
    properties: {
      symbol: { type: "string", pattern: "^[A-Z0-9][A-Z0-9.\\-]{0,7}$" },
      side: { type: "string", enum: ["buy", "sell"] },
      type: { type: "string", enum: ["market", "limit", "stop", "stop_limit", "trailing_stop", "iceberg"] },
      tif: { type: "string", enum: ["day", "gtc", "ioc", "fok"], default: "day" },
      qty: { type: "integer", maximum: 1e9, exclusiveMinimum: 0 },
      price: price(),
      stop_price: price(),
      trail_amount: price("trailing_stop: distance in price"),
      trail_bps: whole({ exclusiveMinimum: 0 }, 9999),
      trail_ref: { anyOf: [{ type: "string", enum: ["quote", "last"] }, { type: "null" }] },
      display_qty: whole({ exclusiveMinimum: 0 }),
      display_jitter: whole({ minimum: 0 }),
      take_profit: price(),
      stop_loss: price(),
    },
    "x-type-fields": {
      market: fields([], BRACKET), limit: fields(["price"], BRACKET), stop: fields(["stop_price"]),
      stop_limit: fields(["price", "stop_price"]),
      trailing_stop: fields([], ["trail_amount", "trail_bps", "trail_ref"]),
      iceberg: fields(["display_qty", "price"], ["display_jitter"]),
    },
  },
  ModifyIn: { properties: { qty: whole({ exclusiveMinimum: 0 }), price: price(), stop_price: price() } },
} } };

const base = { symbol: "AAPL", side: "buy", type: "limit", tif: "day", qty: "100", price: "190.07", stop_price: "" };

describe("order entry from the schema", () => {
  const schema = orderSchema(doc);

  it("takes its choices and bounds from the document", () => {
    expect(schema.types).toContain("iceberg");
    expect(schema.tifDefault).toBe("day");
    expect(schema.qty.max).toBe(1e9);
    expect(schema.specs.price.max).toBe(1e13);
    expect(schema.specs.trail_bps).toMatchObject({ kind: "whole", min: 1, max: 9999 });
    expect(schema.specs.display_jitter).toMatchObject({ kind: "whole", min: 0 });
    expect(schema.specs.trail_ref).toMatchObject({ kind: "choice", values: ["quote", "last"] });
    expect(schema.specs.trail_amount.description).toMatch(/distance/);
  });

  it("shows each type's own fields, in the document's order", () => {
    expect(fieldsFor(schema, "market")).toEqual(["take_profit", "stop_loss"]);
    expect(fieldsFor(schema, "limit")).toEqual(["price", "take_profit", "stop_loss"]);
    expect(fieldsFor(schema, "stop_limit")).toEqual(["price", "stop_price"]);
    expect(fieldsFor(schema, "trailing_stop")).toEqual(["trail_amount", "trail_bps", "trail_ref"]);
    expect(fieldsFor(schema, "iceberg")).toEqual(["price", "display_qty", "display_jitter"]);
    expect(fieldsFor(schema, "unknown")).toEqual([]);
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
    expect(Object.keys(bad({ type: "pegged" }))).toEqual(["type"]);
    expect(Object.keys(bad({ symbol: "aapl" }))).toEqual(["symbol"]);
  });

  it("checks the newer types' fields and the rules across them", () => {
    const check = (d: Record<string, string>) => checkOrder(schema, { ...base, price: "", ...d });
    expect(check({ type: "trailing_stop", trail_bps: "50", trail_ref: "last", stop_price: "9" })).toEqual(
      { body: { symbol: "AAPL", side: "buy", type: "trailing_stop", tif: "day", qty: 100, trail_bps: 50,
                trail_ref: "last" } });
    expect(check({ type: "trailing_stop" })).toMatchObject({ errors: { trail_amount: /one of/ } });
    expect(check({ type: "trailing_stop", trail_amount: "0.05", trail_bps: "5" }))
      .toMatchObject({ errors: { trail_amount: /one of/ } });
    expect(check({ type: "trailing_stop", trail_bps: "10000" })).toMatchObject({ errors: { trail_bps: /1 to/ } });
    expect(check({ type: "trailing_stop", trail_bps: "5", trail_ref: "mid" }))
      .toMatchObject({ errors: { trail_ref: /quote, last/ } });
    expect(check({ type: "iceberg", price: "10", display_qty: "20", display_jitter: "0" })).toMatchObject(
      { body: { price: "10", display_qty: 20, display_jitter: 0 } });
    expect(check({ type: "iceberg", price: "10" })).toMatchObject({ errors: { display_qty: /needs a display qty/ } });
    expect(check({ type: "iceberg", price: "10", display_qty: "101" })).toMatchObject({ errors: { display_qty: /qty/ } });
    expect(check({ type: "iceberg", price: "10", display_qty: "20", display_jitter: "20" }))
      .toMatchObject({ errors: { display_jitter: /less/ } });
    expect(check({ type: "limit", price: "10", take_profit: "11", stop_loss: "9.5" })).toMatchObject(
      { body: { take_profit: "11", stop_loss: "9.5" } });
    expect(check({ type: "market", take_profit: "11" })).toMatchObject({ errors: { stop_loss: /both/ } });
    expect(check({ type: "market", take_profit: "11", stop_loss: "1.00001" }))
      .toMatchObject({ errors: { stop_loss: /4 places/ } });
  });
});

describe("modify from the blotter", () => {
  const schema = orderSchema(doc);
  const limit: Modifiable = { type: "limit", qty: 100, filled_qty: 30, price: "190.0700", stop_price: null };

  it("offers the qty and the prices the type takes", () => {
    expect(modifyFields(schema, limit)).toEqual(["qty", "price"]);
    expect(modifyFields(schema, { ...limit, type: "stop_limit", stop_price: "191.0000" }))
      .toEqual(["qty", "price", "stop_price"]);
    expect(modifyFields(schema, { ...limit, type: "stop_limit", triggered: true })).toEqual(["qty", "price"]);
    expect(modifyFields(schema, { ...limit, type: "trailing_stop", price: null, stop_price: "180.0000" }))
      .toEqual(["qty"]);
  });

  it("sends only what changed, prices as typed", () => {
    expect(checkModify(schema, limit, { qty: "100", price: "190.08" })).toEqual({ body: { price: "190.08" } });
    expect(checkModify(schema, limit, { qty: "80", price: "190.07" })).toEqual({ body: { qty: 80 } });
    expect(checkModify(schema, limit, { qty: " 120 ", price: "190.1" })).toEqual({ body: { qty: 120, price: "190.1" } });
  });

  it("names what the server would refuse", () => {
    const errors = (d: Record<string, string>, o: Modifiable = limit) => {
      const r = checkModify(schema, o, d);
      return "errors" in r ? r.errors : {};
    };
    expect(errors({ qty: "100", price: "190.0700" })).toEqual({ form: "nothing to change" });
    expect(errors({ qty: "30", price: "190.07" }).qty).toMatch(/more than the 30 already filled/);
    expect(errors({ qty: "0", price: "190.07" }).qty).toMatch(/whole number/);
    expect(errors({ qty: "1.5", price: "190.07" }).qty).toMatch(/whole number/);
    expect(errors({ qty: "100", price: "0" }).price).toMatch(/range/);
    expect(errors({ qty: "100", price: "-1" }).price).toMatch(/4 places/);
    expect(errors({ qty: "100", price: "190.00001" }).price).toMatch(/4 places/);
    expect(errors({ qty: "100", price: "" }).price).toMatch(/4 places/);
    const stop = { ...limit, type: "stop", price: null, stop_price: "185.0000" };
    expect(errors({ qty: "100", stop_price: "0.00001" }, stop).stop_price).toMatch(/4 places/);
    expect(checkModify(schema, stop, { qty: "100", stop_price: "184" })).toEqual({ body: { stop_price: "184" } });
  });

  it("says what the answer's priority means", () => {
    expect(priorityText(7, "kept")).toMatch(/order 7 .*kept its place/);
    expect(priorityText(7, "lost")).toMatch(/back of the queue/);
    expect(priorityText(7, "none")).toMatch(/held here/);
  });
});
