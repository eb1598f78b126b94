// Order entry and modify from the API's own document: the OrderIn schema of /openapi.json
// gives the sides, order types and times in force (a type the server learns appears here
// without a change), the bounds, and in ``x-type-fields`` which fields each type takes;
// ModifyIn names what a modify may change. The checks mirror the server's
// (schemas.OrderIn / ModifyIn, services/ordertypes and services/orders) so most mistakes
// are named before the request.

import { toTicks } from "./num";

interface Prop {
  enum?: string[];
  default?: unknown;
  maximum?: number;
  minimum?: number;
  exclusiveMinimum?: number;
  anyOf?: Prop[];
  pattern?: string;
  type?: string;
  description?: string;
}

/** How one field is typed in and checked: a decimal price in ticks, a whole number, or
 * one of a list. */
export interface FieldSpec {
  kind: "price" | "whole" | "choice";
  min: number;
  max: number;
  values: string[];
  description: string;
}

export interface OrderSchema {
  sides: string[];
  types: string[];
  tifs: string[];
  tifDefault: string;
  qty: FieldSpec;
  symbolPattern: RegExp;
  /** The optional fields in the document's order (price, stop_price, trail_amount …). */
  specs: Record<string, FieldSpec>;
  /** Per type: the optional fields it needs and those it takes (a superset). */
  typeFields: Record<string, { required: Set<string>; allowed: Set<string> }>;
  /** What a modify may change (ModifyIn's fields). */
  modifiable: Set<string>;
}

/** The form's text: symbol, side, type, tif, qty and any optional field by name. */
export type OrderDraft = Record<string, string>;

const BASE = new Set(["symbol", "side", "type", "tif", "qty"]);

/** A field's spec from its property schema, through pydantic's nested anyOf. */
function fieldSpec(prop: Prop): FieldSpec {
  const spec: FieldSpec = { kind: "price", min: 1, max: Number.MAX_SAFE_INTEGER, values: [],
                            description: prop.description ?? "" };
  const stack = [prop];
  let number = false;
  while (stack.length) {
    const x = stack.pop()!;
    if (x.enum) {
      spec.kind = "choice";
      spec.values = x.enum;
    } else if (x.type === "integer") {
      spec.kind = "whole";
      spec.min = x.minimum ?? (x.exclusiveMinimum != null ? x.exclusiveMinimum + 1 : 1);
      spec.max = x.maximum ?? spec.max;
    } else if (x.type === "number" && !number) {
      number = true;
      if (x.maximum != null) spec.max = Math.round(x.maximum * 10_000);   // in ticks
    }
    spec.description ||= x.description ?? "";
    stack.push(...(x.anyOf ?? []));
  }
  return spec;
}

/** The order form's shape from an OpenAPI document. */
export function orderSchema(doc: any): OrderSchema {
  const schemas = doc.components.schemas;
  const p = schemas.OrderIn.properties as Record<string, Prop>;
  const table = (schemas.OrderIn["x-type-fields"] ?? {}) as
      Record<string, { required: string[]; allowed: string[] }>;
  const specs: Record<string, FieldSpec> = {};
  for (const [name, prop] of Object.entries(p)) if (!BASE.has(name)) specs[name] = fieldSpec(prop);
  const typeFields: OrderSchema["typeFields"] = {};
  for (const [type, t] of Object.entries(table)) {
    typeFields[type] = { required: new Set(t.required), allowed: new Set(t.allowed) };
  }
  return {
    sides: p.side.enum ?? [],
    types: p.type.enum ?? [],
    tifs: p.tif.enum ?? [],
    tifDefault: String(p.tif.default ?? p.tif.enum?.[0] ?? ""),
    qty: fieldSpec(p.qty),
    symbolPattern: new RegExp(p.symbol.pattern ?? "."),
    specs,
    typeFields,
    modifiable: new Set(Object.keys(schemas.ModifyIn?.properties ?? {})),
  };
}

/** The optional fields an order type takes, in the document's order. */
export function fieldsFor(schema: OrderSchema, type: string): string[] {
  const allowed = schema.typeFields[type]?.allowed ?? new Set();
  return Object.keys(schema.specs).filter((f) => allowed.has(f));
}

/** A field's label in the form. */
export function label(name: string): string {
  return name === "price" ? "limit price" : name.replace(/_/g, " ");
}

/** The value to send for ``text`` in a field of ``spec``, or what is wrong with it.
 * A price goes as the typed decimal string, never a float. */
export function checkValue(spec: FieldSpec, text: string): { value: string | number } | { error: string } {
  const t = text.trim();
  if (spec.kind === "choice") {
    return spec.values.includes(t) ? { value: t } : { error: `one of ${spec.values.join(", ")}` };
  }
  if (spec.kind === "whole") {
    const n = /^\d+$/.test(t) ? Number(t) : NaN;
    return n >= spec.min && n <= spec.max ? { value: n }
      : { error: `a whole number from ${spec.min} to ${spec.max.toLocaleString("en")}` };
  }
  const ticks = toTicks(t);
  if (ticks == null) return { error: "a decimal with at most 4 places" };
  if (ticks <= 0 || ticks > spec.max) return { error: "out of range" };
  return { value: t };
}

type Checked = { body: Record<string, unknown> } | { errors: Record<string, string> };

/** The request body of a new order, or the problems to show (field → message). */
export function checkOrder(schema: OrderSchema, d: OrderDraft): Checked {
  const errors: Record<string, string> = {};
  if (!schema.symbolPattern.test(d.symbol)) errors.symbol = "1-8 characters A-Z 0-9 . -";
  if (!schema.sides.includes(d.side)) errors.side = `one of ${schema.sides.join(", ")}`;
  if (!schema.types.includes(d.type)) errors.type = `one of ${schema.types.join(", ")}`;
  if (!schema.tifs.includes(d.tif)) errors.tif = `one of ${schema.tifs.join(", ")}`;
  const body: Record<string, unknown> = { symbol: d.symbol, side: d.side, type: d.type, tif: d.tif };
  const qty = checkValue(schema.qty, d.qty ?? "");
  if ("error" in qty) errors.qty = qty.error;
  else body.qty = qty.value;
  const required = schema.typeFields[d.type]?.required ?? new Set();
  for (const name of fieldsFor(schema, d.type)) {
    const text = (d[name] ?? "").trim();
    if (text === "") {
      if (required.has(name)) errors[name] = `a ${d.type} order needs a ${name.replace(/_/g, " ")}`;
      continue;
    }
    const got = checkValue(schema.specs[name], text);
    if ("error" in got) errors[name] = got.error;
    else body[name] = got.value;
  }
  // the rules across fields that services/ordertypes.validate applies
  if (d.type === "trailing_stop" && !errors.trail_amount && !errors.trail_bps
      && ("trail_amount" in body) === ("trail_bps" in body)) {
    errors.trail_amount = "give one of trail amount or trail bps";
  }
  if (typeof body.display_qty === "number" && typeof body.qty === "number"
      && body.display_qty > body.qty) {
    errors.display_qty = "no more than the qty";
  }
  if (typeof body.display_jitter === "number" && typeof body.display_qty === "number"
      && body.display_jitter >= body.display_qty) {
    errors.display_jitter = "less than the display qty";
  }
  if (!errors.take_profit && !errors.stop_loss && ("take_profit" in body) !== ("stop_loss" in body)) {
    errors["take_profit" in body ? "stop_loss" : "take_profit"] = "a bracket needs both take profit and stop loss";
  }
  return Object.keys(errors).length ? { errors } : { body };
}

/** What a working order is, as far as a modify goes. */
export interface Modifiable {
  type: string;
  qty: number;
  filled_qty: number;
  price: string | null;
  stop_price: string | null;
  triggered?: boolean;
}

/** The fields a modify of ``order`` offers: the qty, and of its prices those its type
 * takes (a trailing stop's stop price is where its trail is, not a parameter; a
 * triggered stop's is spent). */
export function modifyFields(schema: OrderSchema, order: Modifiable): string[] {
  const allowed = schema.typeFields[order.type]?.allowed ?? new Set();
  return ["qty", ...["price", "stop_price"].filter((f) => schema.modifiable.has(f) && allowed.has(f)
    && !(f === "stop_price" && order.triggered))];
}

/** The PATCH body changing ``order`` to the draft (only what differs), or the problems. */
export function checkModify(schema: OrderSchema, order: Modifiable, d: OrderDraft): Checked {
  const errors: Record<string, string> = {};
  const body: Record<string, unknown> = {};
  for (const name of modifyFields(schema, order)) {
    const text = (d[name] ?? "").trim();
    const got = checkValue(name === "qty" ? schema.qty : schema.specs[name], text);
    if ("error" in got) {
      errors[name] = got.error;
    } else if (name === "qty") {
      if (Number(got.value) <= order.filled_qty) {
        errors.qty = `more than the ${order.filled_qty} already filled`;
      } else if (got.value !== order.qty) {
        body.qty = got.value;
      }
    } else {
      const now = order[name as "price" | "stop_price"];
      if (now == null || toTicks(text) !== toTicks(now)) body[name] = got.value;
    }
  }
  if (!Object.keys(errors).length && !Object.keys(body).length) errors.form = "nothing to change";
  return Object.keys(errors).length ? { errors } : { body };
}

/** The toast after a modify, from the answer's ``priority``. */
export function priorityText(id: number, priority: string | null | undefined): string {
  const how = priority === "kept" ? "kept its place in the queue"
    : priority === "lost" ? "went to the back of the queue"
    : "changed (held here, no queue yet)";
  return `order ${id} modified: ${how}`;
}
