// Order entry from the API's own document: the OrderIn schema of /openapi.json gives the
// sides, order types and times in force (a type the server learns appears here without
// a change) and the bounds; the checks mirror the server's (schemas.OrderIn and
// services/orders.NewOrder) so most mistakes are named before the request.

import { toTicks } from "./num";

interface Prop {
  enum?: string[];
  default?: unknown;
  maximum?: number;
  exclusiveMinimum?: number;
  anyOf?: Prop[];
  pattern?: string;
  type?: string;
}

export interface OrderSchema {
  sides: string[];
  types: string[];
  tifs: string[];
  tifDefault: string;
  maxQty: number;
  maxPriceTicks: number;
  symbolPattern: RegExp;
  fields: Set<string>;
}

export interface OrderDraft {
  symbol: string;
  side: string;
  type: string;
  tif: string;
  qty: string;
  price: string;
  stop_price: string;
}

/** The order form's shape from an OpenAPI document. */
export function orderSchema(doc: any): OrderSchema {
  const s = doc.components.schemas.OrderIn;
  const p = s.properties as Record<string, Prop>;
  const priceBound = (prop: Prop | undefined): number => {
    const stack = prop ? [prop] : [];
    while (stack.length) {
      const x = stack.pop()!;
      if (x.maximum != null) return Math.round(x.maximum * 10_000);
      stack.push(...(x.anyOf ?? []));
    }
    return Number.MAX_SAFE_INTEGER;
  };
  return {
    sides: p.side.enum ?? [],
    types: p.type.enum ?? [],
    tifs: p.tif.enum ?? [],
    tifDefault: String(p.tif.default ?? p.tif.enum?.[0] ?? ""),
    maxQty: p.qty.maximum ?? Number.MAX_SAFE_INTEGER,
    maxPriceTicks: priceBound(p.price),
    symbolPattern: new RegExp(p.symbol.pattern ?? "."),
    fields: new Set(Object.keys(p)),
  };
}

/** Which price fields an order type takes: a limit price for types named with "limit",
 * a stop price for those named with "stop" (so a "stop_limit" takes both). */
export function priceFields(type: string): { price: boolean; stop_price: boolean } {
  return { price: type.includes("limit"), stop_price: type.includes("stop") };
}

/** The request body, or the problems to show (field → message). */
export function checkOrder(schema: OrderSchema, d: OrderDraft):
    { body: Record<string, unknown> } | { errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  if (!schema.symbolPattern.test(d.symbol)) errors.symbol = "1-8 characters A-Z 0-9 . -";
  if (!schema.sides.includes(d.side)) errors.side = `one of ${schema.sides.join(", ")}`;
  if (!schema.types.includes(d.type)) errors.type = `one of ${schema.types.join(", ")}`;
  if (!schema.tifs.includes(d.tif)) errors.tif = `one of ${schema.tifs.join(", ")}`;
  const qty = /^\d+$/.test(d.qty.trim()) ? Number(d.qty) : NaN;
  if (!(qty > 0 && qty <= schema.maxQty)) {
    errors.qty = `a whole number from 1 to ${schema.maxQty.toLocaleString("en")}`;
  }
  const body: Record<string, unknown> = { symbol: d.symbol, side: d.side, type: d.type,
                                          tif: d.tif, qty };
  const wants = priceFields(d.type);
  for (const name of ["price", "stop_price"] as const) {
    if (!wants[name] || !schema.fields.has(name)) continue;
    const text = d[name].trim();
    const ticks = toTicks(text);
    if (text === "") errors[name] = `a ${d.type} order needs a ${name.replace("_", " ")}`;
    else if (ticks == null) errors[name] = "a decimal with at most 4 places";
    else if (ticks <= 0 || ticks > schema.maxPriceTicks) errors[name] = "out of range";
    else body[name] = text;
  }
  return Object.keys(errors).length ? { errors } : { body };
}
