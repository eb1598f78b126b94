// The operator's console (operator and admin roles; the server refuses the routes to
// anyone else): the market's feed and order session, the FPGA when one is attached,
// the streams, risk limits, the kill switch, and user roles (admin).

import { ApiError, type Api } from "./api";
import { fmtPrice, fmtQty } from "./num";
import { fill, h, table, toast } from "./ui";

type Counters = Record<string, number>;

export class OperatorScreen {
  readonly el = h("main", { id: "operator", class: "operator" });
  private timer: number | undefined;
  private prev = new Map<string, { at: number; values: Map<string, number> }>();
  private killEl = h("section", { class: "panel kill", "aria-label": "Kill switch" });
  private marketEl = h("section", { class: "panel", "aria-label": "Market feed" });
  private deviceEl = h("section", { class: "panel", "aria-label": "FPGA" });
  private streamsEl = h("section", { class: "panel", "aria-label": "Streams" });
  private limitsEl = h("section", { class: "panel", "aria-label": "Risk limits" });
  private usersEl = h("section", { class: "panel", "aria-label": "Users" });
  private engaged = false;

  constructor(private api: Api, private role: string) {}

  start(): void {
    fill(this.el, this.killEl, this.marketEl, this.deviceEl, this.streamsEl, this.limitsEl,
         this.role === "admin" ? this.usersEl : null);
    this.drawUsers();
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), 2000);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    const [kill, market, streams, device, counters, limits] = await Promise.all([
      this.api.get("/operator/kill-switch"), this.api.get("/operator/market"),
      this.api.get("/operator/streams"), optional(this.api.get("/operator/device")),
      optional(this.api.get("/operator/counters")), this.api.get("/risk/limits")]);
    this.engaged = kill.engaged;
    this.drawKill();
    this.drawMarket(market);
    this.drawDevice(device, counters);
    fill(this.streamsEl, h("h2", {}, "Streams"), keyValues(streams));
    this.drawLimits(limits.limits);
  }

  private drawKill(): void {
    if (this.killEl.querySelector(".confirm")) return;      // a confirmation is open
    const state = h("strong", { class: this.engaged ? "neg" : "pos", id: "kill-state" },
      this.engaged ? "ENGAGED: new orders rejected" : "released: trading");
    fill(this.killEl, h("h2", {}, "Kill switch"), h("p", {}, state),
      h("button", { class: this.engaged ? "" : "danger", onclick: () => this.confirmKill() },
        this.engaged ? "Release kill switch" : "Engage kill switch"));
  }

  private confirmKill(): void {
    const engage = !this.engaged;
    const reason = h("input", { name: "reason", placeholder: "reason (recorded in the audit)", size: 30 });
    const box = h("div", { class: "confirm" },
      h("p", {}, engage ? "Engaging cancels every open order and rejects new ones, for every user."
                        : "Releasing lets orders through again."),
      reason,
      h("button", { class: engage ? "danger" : "", onclick: async () => {
        try {
          const r = await this.api.call("PUT", "/operator/kill-switch", { engaged: engage, reason: reason.value });
          toast(`kill switch ${r.engaged ? "engaged" : "released"}; ${r.orders_canceled} order(s) canceled`);
        } catch (e) {
          toast(`kill switch: ${(e as Error).message}`, "error");
        }
        box.remove();
        await this.refresh();
      } }, engage ? "Confirm: engage" : "Confirm: release"),
      h("button", { onclick: () => { box.remove(); this.drawKill(); } }, "Cancel"));
    this.killEl.append(box);
    reason.focus();
  }

  private drawMarket(m: any): void {
    if (!m.live) {
      fill(this.marketEl, h("h2", {}, "Market feed"), h("p", {}, "no venue attached"));
      return;
    }
    const { feed_status: status, ...rest } = m;
    fill(this.marketEl, h("h2", {}, "Market feed"), keyValues(rest, this.rates("market", rest)),
         status ? h("div", {}, h("h3", {}, "Feed state"), keyValues(status)) : null);
  }

  private drawDevice(device: any, counters: any): void {
    if (device == null) {
      fill(this.deviceEl, h("h2", {}, "FPGA"), h("p", { class: "muted" },
        "no device attached (t2t api); `t2t run --api` serves the API with the FPGA in the path"));
      return;
    }
    fill(this.deviceEl, h("h2", {}, "FPGA"), keyValues(device),
         counters ? h("div", {}, h("h3", {}, "Counters by block"), keyValues(counters, this.rates("counters", counters))) : null);
  }

  /** Per-second rates of the numeric values since the source's last refresh, by
   * flattened key. */
  private rates(source: string, values: object): Counters {
    const now = performance.now();
    const flat = new Map<string, number>();
    flatten(values, "", flat);
    const out: Counters = {};
    const prev = this.prev.get(source);
    if (prev) {
      const dt = (now - prev.at) / 1000;
      for (const [k, v] of flat) {
        const before = prev.values.get(k);
        if (before != null && dt > 0 && v >= before) out[k] = (v - before) / dt;
      }
    }
    this.prev.set(source, { at: now, values: flat });
    return out;
  }

  private drawLimits(limits: any[]): void {
    if (this.limitsEl.contains(document.activeElement)) return;    // someone is typing
    const form = h("form", { class: "inline" },
      h("input", { name: "symbol", placeholder: "symbol or *", size: 8, "aria-label": "symbol" }),
      h("input", { name: "max_order_qty", placeholder: "max order qty", size: 10, "aria-label": "max order qty" }),
      h("input", { name: "max_notional", placeholder: "max notional", size: 12, "aria-label": "max notional" }),
      h("input", { name: "max_position", placeholder: "max position", size: 10, "aria-label": "max position" }),
      h("button", { type: "submit" }, "Set"));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const body: Record<string, unknown> = {};
      for (const k of ["max_order_qty", "max_position"]) {
        const v = String(f.get(k) ?? "").trim();
        if (v) body[k] = Number(v);
      }
      const notional = String(f.get("max_notional") ?? "").trim();
      if (notional) body.max_notional = notional;
      try {
        await this.api.call("PUT", `/risk/limits/${encodeURIComponent(String(f.get("symbol") || "*"))}`, body);
        toast("limits saved");
      } catch (err) {
        toast(`limits: ${(err as Error).message}`, "error");
      }
      (document.activeElement as HTMLElement | null)?.blur();
      await this.refresh();
    };
    fill(this.limitsEl, h("h2", {}, "Risk limits"),
      table(["symbol", "max order qty", "max notional", "max position"], limits.map((l) => [
        l.symbol, fmtQty(l.max_order_qty), fmtPrice(l.max_notional), fmtQty(l.max_position)]), new Set([1, 2, 3])),
      form);
  }

  private drawUsers(): void {
    const form = h("form", { class: "inline" },
      h("input", { name: "username", placeholder: "username", "aria-label": "username" }),
      h("select", { name: "role", "aria-label": "role" }, ...["trader", "operator", "admin"].map((r) => h("option", { value: r }, r))),
      h("button", { type: "submit" }, "Set role"));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      try {
        const u = await this.api.call("PUT", `/users/${encodeURIComponent(String(f.get("username")))}/role`, { role: f.get("role") });
        toast(`${u.username} is now ${u.role}`);
      } catch (err) {
        toast(`role: ${(err as Error).message}`, "error");
      }
    };
    fill(this.usersEl, h("h2", {}, "Users"), form);
  }
}

async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && e.status === 503) return null;
    throw e;
  }
}

function flatten(v: unknown, prefix: string, out: Map<string, number>): void {
  if (typeof v === "number") out.set(prefix, v);
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  }
}

/** Nested values as a table of dotted keys, numbers right-aligned, with their rates. */
function keyValues(v: object, rates: Counters = {}): HTMLTableElement {
  const flat: [string, unknown][] = [];
  const walk = (x: unknown, p: string) => {
    if (x && typeof x === "object" && !Array.isArray(x)) {
      for (const [k, y] of Object.entries(x)) walk(y, p ? `${p}.${k}` : k);
    } else flat.push([p, x]);
  };
  walk(v, "");
  return table(["", "value", "/s"], flat.map(([k, x]) => [k,
    typeof x === "number" ? fmtQty(x) : typeof x === "string" ? x : JSON.stringify(x), k in rates ? rates[k].toFixed(1) : ""]),
    new Set([1, 2]));
}
