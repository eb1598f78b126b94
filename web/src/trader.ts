// The trader's screen: watchlist, depth ladder, chart, order entry, blotter, positions,
// notifications and price alerts. Market data comes from the stream; orders, positions
// and lists from the REST API, read again when a notification says they changed.

import type { Api } from "./api";
import { Book, type BookMessage, inferTick, ladderRows } from "./book";
import { Candles, type Fill } from "./chart";
import { fmtPrice, fmtQty, fmtTicks, toTicks } from "./num";
import { checkOrder, type OrderDraft, orderSchema, type OrderSchema, priceFields } from "./orderform";
import type { Message, Stream } from "./stream";
import { fill, h, table, time, toast } from "./ui";

const LADDER_ROWS = 160;       // price ticks the ladder shows, the market in the middle
const DEFAULT_TICK = 100;      // 0.01: the coarsest grid a ladder starts with
const OPEN = new Set(["pending", "accepted", "partially_filled"]);

interface Order {
  id: number; symbol: string; side: string; type: string; tif: string; qty: number;
  price: string | null; stop_price: string | null; filled_qty: number;
  avg_fill_price: string | null; status: string; reason: string | null; created_at: string;
}
interface Quote { symbol: string; bid?: string | null; ask?: string | null; last?: string | null }
interface Notification { id: number; kind: string; payload: any; created_at: string; read: boolean }

export class TraderScreen {
  readonly el = h("main", { id: "trader", class: "trader" });
  private schema!: OrderSchema;
  private symbols: string[] = [];
  private watch: string[] = [];
  private quotes = new Map<string, Quote>();
  private symbol = "";
  private book: Book | null = null;
  private candles!: Candles;
  private orders: Order[] = [];
  private fills: (Fill & { symbol: string; order_id: number; id: number })[] = [];
  private last: number | null = null;
  private centred = false;
  private ladderTop: number | null = null;
  private ladderSel: number | null = null;
  private tick = 100;
  private ladderCells = new Map<number, Record<"mineBid" | "bid" | "ask" | "mineAsk" | "row", HTMLElement>>();
  private drawQueued = false;
  private timers: number[] = [];
  private blotterTab: "working" | "done" | "executions" | "positions" = "working";
  private positions: any[] = [];
  private perf: any = null;
  private watchRows = new Map<string, { row: HTMLElement; cells: HTMLElement[] }>();
  private seen = { orders: "", positions: "" };

  private watchEl = h("section", { class: "panel watch", "aria-label": "Watchlist" });
  private ladderEl = h("div", { class: "ladder-body", tabIndex: 0 });
  private ladderHead = h("div", { class: "ladder-head" });
  private chartEl = h("div", { class: "chart" });
  private formEl = h("form", { class: "order-form", "aria-label": "Order entry" });
  private blotterEl = h("section", { class: "panel blotter", "aria-label": "Blotter" });
  private noteEl = h("section", { class: "panel notes", "aria-label": "Notifications" });
  private alertEl = h("section", { class: "panel alerts", "aria-label": "Price alerts" });

  constructor(private api: Api, private stream: Stream) {}

  async start(): Promise<void> {
    const [doc, market, lists] = await Promise.all([
      fetch("/openapi.json").then((r) => r.json()), this.api.get("/market"),
      this.api.get("/watchlists")]);
    this.schema = orderSchema(doc);
    this.symbols = market.symbols.map((s: Quote) => s.symbol);
    for (const q of market.symbols) this.quotes.set(q.symbol, q);
    const saved = lists.watchlists.find((w: any) => w.name === "default");
    this.watch = saved ? saved.symbols : this.symbols.slice(0, 8);
    fill(this.el,
      this.watchEl,
      h("section", { class: "panel ladder", "aria-label": "Depth ladder" }, this.ladderHead, this.ladderEl),
      h("section", { class: "panel centre" }, this.chartEl, this.formEl),
      h("div", { class: "side" }, this.noteEl, this.alertEl),
      this.blotterEl);
    this.candles = new Candles(this.chartEl);
    this.ladderEl.addEventListener("keydown", (e) => this.ladderKey(e));
    this.subscribeQuotes();
    this.drawWatch();
    this.select(this.watch[0] ?? this.symbols[0] ?? "");
    await Promise.all([this.loadOrders(), this.loadFills(), this.loadPositions(),
                       this.loadNotes(), this.loadAlerts()]);
    this.timers.push(window.setInterval(() => void this.loadPositions(), 2000),
                     window.setInterval(() => void this.loadOrders(), 5000));
  }

  stop(): void {
    this.timers.forEach(clearInterval);
  }

  /** A stream message. */
  onMessage(m: Message): void {
    switch (m.type) {
      case "quote":
        this.quotes.set(m.symbol, m as unknown as Quote);
        this.quoteRow(m.symbol);
        break;
      case "book":
        if (this.book && m.symbol === this.book.symbol) {
          if (this.book.apply(m as BookMessage) === "gap") {
            this.stream.send({ op: "snapshot", symbol: m.symbol });
          }
          this.queueDraw();
        }
        break;
      case "trade":
        if (m.symbol === this.symbol) {
          this.last = toTicks(m.price);
          this.queueDraw();
        }
        break;
      case "bar":
        if (m.symbol === this.symbol) this.candles.update(m as any, m.interval_seconds);
        break;
      case "notification":
        this.onNotification(m as unknown as Notification);
        break;
      case "error":
        if (m.ref == null) console.warn("stream:", m.detail);
        break;
    }
  }

  /** Back on the stream after a drop: the book starts again from a snapshot. */
  onReconnect(): void {
    if (this.symbol) this.book = new Book(this.symbol);
    void this.loadOrders();
  }

  private subscribeQuotes(): void {
    this.stream.subscribe("quotes", { channels: ["quotes"],
                                      symbols: this.watch.filter((s) => this.symbols.includes(s)) });
  }

  private select(symbol: string): void {
    if (!symbol) return;
    const before = this.symbol;
    this.symbol = symbol;
    this.quoteRow(before);
    this.quoteRow(symbol);
    this.book = new Book(symbol);
    this.last = toTicks(this.quotes.get(symbol)?.last ?? "");
    this.ladderTop = null;
    this.ladderSel = null;
    this.tick = DEFAULT_TICK;
    fill(this.ladderHead, h("h2", {}, `${symbol} depth`), h("span", { class: "muted" }),
      h("button", { onclick: () => this.centre(true), title: "Re-centre (c in the ladder; ↑/↓ pick a price, b / s stage an order there)" }, "Centre"));
    fill(this.ladderEl);
    this.stream.subscribe("book", { channels: ["book", "trades", "bars"], symbols: [symbol] });
    this.drawForm({ symbol });
    this.queueDraw();
    void this.loadChart();
  }

  // --- watchlist -----------------------------------------------------------------------

  /** Rows built when the list changes; a quote only rewrites its row's prices. */
  private drawWatch(): void {
    this.watchRows.clear();
    const rows = this.watch.map((s) => {
      const cells = [h("td", { class: "num bid" }), h("td", { class: "num ask" }), h("td", { class: "num wide" })];
      const row = h("tr", { onclick: () => this.select(s), tabIndex: 0, "data-symbol": s,
                            onkeydown: (e: KeyboardEvent) => e.key === "Enter" && this.select(s) },
        h("td", {}, s), ...cells,
        h("td", {}, h("button", { class: "icon", title: `Remove ${s}`, "aria-label": `Remove ${s}`,
                                  onclick: (e: Event) => { e.stopPropagation(); void this.saveWatch(this.watch.filter((x) => x !== s)); } }, "×")));
      this.watchRows.set(s, { row, cells });
      return row;
    });
    const add = h("select", { "aria-label": "Add a symbol" },
      h("option", { value: "" }, "add…"),
      ...this.symbols.filter((s) => !this.watch.includes(s)).map((s) => h("option", { value: s }, s)));
    add.addEventListener("change", () => add.value && void this.saveWatch([...this.watch, add.value]));
    fill(this.watchEl, h("h2", {}, "Watchlist"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Symbol"), h("th", { class: "num" }, "Bid"),
        h("th", { class: "num" }, "Ask"), h("th", { class: "num wide" }, "Last"), h("th", {}))),
        h("tbody", {}, ...rows)), add);
    for (const s of this.watch) this.quoteRow(s);
  }

  private quoteRow(symbol: string): void {
    const r = this.watchRows.get(symbol);
    if (!r) return;
    const q = this.quotes.get(symbol);
    [q?.bid, q?.ask, q?.last].forEach((v, i) => set(r.cells[i], fmtPrice(v)));
    r.row.classList.toggle("selected", symbol === this.symbol);
  }

  private async saveWatch(symbols: string[]): Promise<void> {
    try {
      const saved = await this.api.call("PUT", "/watchlists", { name: "default", symbols });
      this.watch = saved.symbols;
      this.subscribeQuotes();
      this.drawWatch();
    } catch (e) {
      toast(`watchlist: ${(e as Error).message}`, "error");
    }
  }

  // --- ladder --------------------------------------------------------------------------

  private queueDraw(): void {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.drawLadder();
    });
  }

  /** The ladder keeps its rows (one per price tick, the market in the middle) until it
   * is re-centred, so a level stays where the trader is about to click; each frame only
   * changes the cells' text. */
  private drawLadder(): void {
    const book = this.book;
    if (!book) return;
    set(this.ladderHead.querySelector<HTMLElement>(".muted")!, book.seq ? `seq ${book.seq} · ${
      book.source ?? "?"}${book.depthTracked ? ` · top ${book.depthTracked} tracked` : " · full depth"}`
      : "waiting for the book…");
    const bestBid = book.side("bid")[0]?.price;
    const bestAsk = book.side("ask")[0]?.price;
    const inside = bestAsk ?? bestBid;
    if (inside == null) return;
    // the grid only gets finer (a level between two rows), so rows never flip back
    const prices = book.prices();
    const tick = this.ladderTop == null ? Math.min(inferTick(prices), DEFAULT_TICK)
                                        : inferTick([this.ladderTop, this.ladderTop - this.tick, ...prices]);
    const bottom = this.ladderTop == null ? 0 : this.ladderTop - (LADDER_ROWS - 1) * this.tick;
    if (this.ladderTop == null || tick !== this.tick || inside > this.ladderTop || inside < bottom) {
      this.tick = tick;
      const mid = Math.round((bestBid ?? inside) / tick) * tick;
      this.ladderTop = mid + Math.floor(LADDER_ROWS / 2) * tick;
      this.buildLadder(book.symbol);
    }
    const mine = new Map<number, { buy: number; sell: number }>();
    for (const o of this.orders) {
      if (o.symbol !== book.symbol || !OPEN.has(o.status) || o.price == null) continue;
      const p = toTicks(o.price)!;
      const m = mine.get(p) ?? { buy: 0, sell: 0 };
      m[o.side === "buy" ? "buy" : "sell"] += o.qty - o.filled_qty;
      mine.set(p, m);
    }
    for (const r of ladderRows(book, this.ladderTop!, this.tick, LADDER_ROWS)) {
      const cells = this.ladderCells.get(r.price);
      if (!cells) continue;
      const m = mine.get(r.price);
      set(cells.mineBid, m?.buy ? fmtQty(m.buy) : "");
      set(cells.bid, r.bid ? fmtQty(r.bid.size) : "");
      set(cells.ask, r.ask ? fmtQty(r.ask.size) : "");
      set(cells.mineAsk, m?.sell ? fmtQty(m.sell) : "");
      const cls = [r.tracked ? "" : "untracked", r.price === this.last ? "last" : "",
                   r.price === bestAsk ? "best-ask" : "", r.price === bestBid ? "best-bid" : "",
                   r.price === this.ladderSel ? "sel" : ""].join(" ");
      if (cells.row.className !== cls) cells.row.className = cls;     // no restyle when unchanged
    }
    if (!this.centred) this.centred = this.centre();
  }

  private buildLadder(symbol: string): void {
    this.ladderCells.clear();
    const body = h("tbody", {});
    for (let i = 0; i < LADDER_ROWS; i++) {
      const price = this.ladderTop! - i * this.tick;
      if (price <= 0) break;
      const text = fmtTicks(price);
      const stage = (side: string) => () => this.drawForm({ symbol, side, type: "limit", price: text });
      const cells = {
        mineBid: h("td", { class: "num mine" }),
        bid: h("td", { class: "num bid level", onclick: stage("buy"), title: `Buy limit at ${text}` }),
        ask: h("td", { class: "num ask level", onclick: stage("sell"), title: `Sell limit at ${text}` }),
        mineAsk: h("td", { class: "num mine" }),
        row: h("tr", { "data-price": text }),
      };
      cells.row.append(cells.mineBid, cells.bid, h("td", { class: "num price" }, text), cells.ask, cells.mineAsk);
      body.append(cells.row);
      this.ladderCells.set(price, cells);
    }
    const header = h("tr", {}, h("th", { class: "num", title: "your working buy orders" }, "mine"),
      h("th", { class: "num" }, "bid size"), h("th", { class: "num" }, "price"),
      h("th", { class: "num" }, "ask size"), h("th", { class: "num", title: "your working sell orders" }, "mine"));
    fill(this.ladderEl, h("table", { class: "ladder-table" }, h("thead", {}, header), body));
    this.centred = false;
  }

  /** Keys in the ladder: ↑/↓ move the selected price (from the touch), b / s stage a
   * buy or sell limit there, c re-centres. */
  private ladderKey(e: KeyboardEvent): void {
    const book = this.book;
    if (!book) return;
    if (e.key === "c") {
      this.centre(true);
    } else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      e.preventDefault();
      const start = this.ladderSel ?? book.side("bid")[0]?.price ?? book.side("ask")[0]?.price;
      if (start == null) return;
      this.ladderSel = start + (e.key === "ArrowUp" ? this.tick : -this.tick);
      this.ladderCells.get(this.ladderSel)?.row.scrollIntoView({ block: "nearest" });
      this.queueDraw();
    } else if ((e.key === "b" || e.key === "s") && this.ladderSel != null) {
      e.preventDefault();        // the key must not land in the quantity, focused next
      this.drawForm({ symbol: book.symbol, side: e.key === "b" ? "buy" : "sell", type: "limit",
                      price: fmtTicks(this.ladderSel) });
    }
  }

  /** Scroll the inside market to the middle; with ``rebuild`` put it in the middle row.
   * False while the ladder is not laid out (not on the page yet). */
  private centre(rebuild = false): boolean {
    if (rebuild) {
      this.ladderTop = null;
      this.drawLadder();
    }
    const row = this.ladderEl.querySelector<HTMLElement>("tr.best-ask") ?? this.ladderEl.querySelector<HTMLElement>("tr.best-bid");
    if (!row || !this.ladderEl.clientHeight) return false;
    this.ladderEl.scrollTop = row.offsetTop - this.ladderEl.clientHeight / 2 + row.offsetHeight;
    return true;
  }

  // --- chart ---------------------------------------------------------------------------

  private async loadChart(): Promise<void> {
    const symbol = this.symbol;
    try {
      const hist = await this.api.get(`/market/${symbol}/history`);
      if (symbol !== this.symbol) return;
      this.candles.load(hist.bars, hist.interval_seconds);
    } catch {
      this.candles.load([], 60);       // no prints yet: the stream's bars fill it
    }
    this.markFills();
  }

  private markFills(): void {
    this.candles.fills(this.fills.filter((f) => f.symbol === this.symbol));
  }

  // --- order entry ---------------------------------------------------------------------

  private drawForm(set: Partial<OrderDraft>): void {
    const cur = this.draft();
    const d: OrderDraft = { symbol: this.symbol, side: this.schema.sides[0], type: this.schema.types[0],
                            tif: this.schema.tifDefault, qty: "100", price: "", stop_price: "", ...cur, ...set };
    const choice = (name: keyof OrderDraft, values: string[]) =>
      h("label", {}, name, h("select", { name, onchange: () => this.drawForm({}) },
        ...values.map((v) => h("option", { value: v, selected: v === d[name] }, v))));
    const wants = priceFields(d.type);
    const field = (name: keyof OrderDraft, label: string, show = true) => show && h("label", {}, label,
      h("input", { name, value: d[name], inputMode: "decimal", autocomplete: "off" }),
      h("span", { class: "error", "data-for": name }));
    fill(this.formEl, h("h2", {}, "Order"),
      h("label", {}, "symbol", h("input", { name: "symbol", value: d.symbol, readOnly: true })),
      choice("side", this.schema.sides), choice("type", this.schema.types), choice("tif", this.schema.tifs),
      field("qty", "qty"), field("price", "limit price", wants.price), field("stop_price", "stop price", wants.stop_price),
      h("button", { type: "submit", class: `place ${d.side}` }, `${d.side} ${d.symbol}`),
      h("span", { class: "error", "data-for": "form" }));
    this.formEl.onsubmit = (e) => {
      e.preventDefault();
      void this.place();
    };
    if (set.price) this.formEl.querySelector<HTMLInputElement>("[name=qty]")?.focus();
  }

  private draft(): Partial<OrderDraft> {
    const out: Record<string, string> = {};
    for (const el of this.formEl.querySelectorAll<HTMLInputElement | HTMLSelectElement>("[name]")) {
      out[el.name] = el.value;
    }
    return out;
  }

  private async place(): Promise<void> {
    const checked = checkOrder(this.schema, { ...this.draft() } as OrderDraft);
    for (const el of this.formEl.querySelectorAll(".error")) el.textContent = "";
    if ("errors" in checked) {
      for (const [k, v] of Object.entries(checked.errors)) {
        const el = this.formEl.querySelector(`.error[data-for=${k}]`) ?? this.formEl.querySelector(".error[data-for=form]");
        if (el) el.textContent = v;
      }
      return;
    }
    try {
      await this.api.call("POST", "/orders", checked.body);   // its notifications follow
      await this.loadOrders();
    } catch (e) {
      this.formEl.querySelector(".error[data-for=form]")!.textContent = (e as Error).message;
    }
  }

  // --- blotter -------------------------------------------------------------------------

  private async loadOrders(): Promise<void> {
    try {
      const page = await this.api.get("/orders?limit=200");
      const text = JSON.stringify(page.items);
      if (text === this.seen.orders) return;         // unchanged: leave the rows be
      this.seen.orders = text;
      this.orders = page.items;
    } catch {
      return;
    }
    this.drawBlotter();
    this.queueDraw();
  }

  private async loadFills(): Promise<void> {
    try {
      const page = await this.api.get("/portfolio/transactions?format=json&limit=10000");
      this.fills = page.items;
    } catch {
      return;
    }
    this.drawBlotter();
    this.markFills();
  }

  private drawBlotter(): void {
    const tab = (name: typeof this.blotterTab, label: string) => h("button", {
      role: "tab", "aria-selected": String(this.blotterTab === name), class: this.blotterTab === name ? "on" : "",
      onclick: () => { this.blotterTab = name; this.drawBlotter(); } }, label);
    const working = this.orders.filter((o) => OPEN.has(o.status));
    const done = this.orders.filter((o) => !OPEN.has(o.status));
    const orderRows = (list: Order[], cancel: boolean) => list.map((o) => [
      String(o.id), time(o.created_at), o.symbol, o.side, o.type, o.tif, fmtQty(o.qty),
      fmtPrice(o.price ?? o.stop_price), fmtQty(o.filled_qty), fmtPrice(o.avg_fill_price),
      h("span", { class: `status ${o.status}`, title: o.reason ?? "" }, o.status),
      cancel ? h("button", { onclick: () => void this.cancel(o.id), "aria-label": `Cancel order ${o.id}` }, "Cancel")
             : (o.reason ?? "")]);
    const head = ["id", "time", "symbol", "side", "type", "tif", "qty", "price", "filled", "avg", "status", ""];
    const num = new Set([0, 6, 7, 8, 9]);
    const pnl = (v: string | null) => h("span", { class: v && v.startsWith("-") ? "neg" : "pos" }, fmtPrice(v));
    let body: HTMLElement;
    if (this.blotterTab === "positions") {
      body = table(["symbol", "qty", "avg price", "mark", "market value", "unrealized", "realized"],
        this.positions.map((p: any) => [p.symbol, fmtQty(p.qty), fmtPrice(p.avg_price), fmtPrice(p.mark),
          fmtPrice(p.market_value), pnl(p.unrealized), pnl(p.realized)]), new Set([1, 2, 3, 4, 5, 6]));
    } else if (this.blotterTab === "executions") {
      body = table(["time", "order", "symbol", "side", "qty", "price", "notional", "realized"],
        [...this.fills].reverse().slice(0, 200).map((f: any) => [time(f.ts), String(f.order_id), f.symbol, f.side,
          fmtQty(f.qty), fmtPrice(f.price), fmtPrice(f.notional), fmtPrice(f.realized_pnl)]), new Set([1, 4, 5, 6, 7]));
    } else {
      body = table(head, orderRows(this.blotterTab === "working" ? working : done, this.blotterTab === "working"), num);
    }
    fill(this.blotterEl, h("div", { class: "tabs", role: "tablist" },
      tab("working", `Working (${working.length})`), tab("done", `Done (${done.length})`),
      tab("executions", `Executions (${this.fills.length})`), tab("positions", `Positions (${this.positions.length})`),
      h("span", { class: "grow" }),
      this.perf && h("span", { class: "totals", id: "pnl" }, "P&L ", pnl(this.perf.total_pnl), " · realized ",
        pnl(this.perf.realized), " · unrealized ", pnl(this.perf.unrealized)),
      h("span", {}, "transactions ",
        h("button", { onclick: () => void this.api.download("/portfolio/transactions?format=csv", "transactions.csv") }, "CSV"),
        " ", h("button", { onclick: () => void this.api.download("/portfolio/transactions?format=pdf", "transactions.pdf") }, "PDF"))),
      h("div", { class: "scroll" }, body));
  }

  private async cancel(id: number): Promise<void> {
    try {
      await this.api.call("DELETE", `/orders/${id}`);      // the notification tells the outcome
    } catch (e) {
      toast(`cancel ${id}: ${(e as Error).message}`, "error");
    }
    await this.loadOrders();
  }

  // --- positions -----------------------------------------------------------------------

  private async loadPositions(): Promise<void> {
    let pos: any, perf: any;
    try {
      [pos, perf] = await Promise.all([this.api.get("/portfolio/positions"), this.api.get("/portfolio/performance")]);
    } catch {
      return;
    }
    const text = JSON.stringify([pos, perf]);
    if (text === this.seen.positions) return;
    this.seen.positions = text;
    this.positions = pos.positions;
    this.perf = perf;
    this.drawBlotter();
  }

  // --- notifications -------------------------------------------------------------------

  private onNotification(n: Notification): void {
    if (n.kind !== "portfolio_value") toast(describe(n));
    if (n.kind === "order_status") {
      void this.loadOrders();
      void this.loadFills();
    }
    if (n.kind === "price_alert") void this.loadAlerts();
    void this.loadNotes();
  }

  private async loadNotes(): Promise<void> {
    let page: any;
    try {
      page = await this.api.get("/notifications?limit=50");
    } catch {
      return;
    }
    const items: Notification[] = page.items;
    const unread = items.filter((n) => !n.read).length;
    fill(this.noteEl, h("h2", {}, "Notifications ", unread ? h("span", { class: "badge" }, unread) : null),
      h("ul", { class: "notes-list" }, ...items.map((n) => h("li", { class: n.read ? "read" : "unread" },
        h("span", { class: "muted" }, time(n.created_at)), " ", describe(n), " ",
        n.read ? null : h("button", { onclick: () => void this.markRead(n.id) }, "mark read")))));
  }

  private async markRead(id: number): Promise<void> {
    await this.api.call("POST", `/notifications/${id}/read`);
    await this.loadNotes();
  }

  // --- price alerts --------------------------------------------------------------------

  private async loadAlerts(): Promise<void> {
    let page: any;
    try {
      page = await this.api.get("/alerts");
    } catch {
      return;
    }
    const form = h("form", { class: "inline" },
      h("select", { name: "field", "aria-label": "field" }, ...["last", "bid", "ask"].map((v) => h("option", { value: v }, v))),
      h("select", { name: "op", "aria-label": "op" }, ...["above", "below"].map((v) => h("option", { value: v }, v))),
      h("input", { name: "threshold", placeholder: "price", inputMode: "decimal", size: 9, "aria-label": "threshold" }),
      h("button", { type: "submit" }, `Alert on ${this.symbol}`));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const threshold = String(f.get("threshold") ?? "").trim();
      if (toTicks(threshold) == null || toTicks(threshold) === 0) {
        toast("alert: the price is a positive decimal with at most 4 places", "error");
        return;
      }
      try {
        await this.api.call("POST", "/alerts", { symbol: this.symbol, field: f.get("field"), op: f.get("op"), threshold });
      } catch (err) {
        toast(`alert: ${(err as Error).message}`, "error");
      }
      await this.loadAlerts();
    };
    fill(this.alertEl, h("h2", {}, "Price alerts"), form,
      table(["symbol", "when", "price", "", ""], page.items.map((a: any) => [a.symbol, `${a.field} ${a.op}`,
        fmtPrice(a.threshold), a.active ? "active" : "fired",
        h("button", { "aria-label": `Delete alert ${a.id}`, onclick: async () => {
          await this.api.call("DELETE", `/alerts/${a.id}`);
          await this.loadAlerts();
        } }, "Delete")]), new Set([2])));
  }
}

function set(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

function describe(n: Notification): string {
  const p = n.payload ?? {};
  if (n.kind === "order_status") return `order ${p.order_id ?? ""} ${p.symbol ?? ""} ${p.status ?? ""}`.trim();
  if (n.kind === "price_alert") return `alert: ${p.symbol} ${p.field} ${p.op} ${p.threshold} (${p.value ?? ""})`;
  if (n.kind === "risk_alert") return p.level === "kill_switch"
    ? `kill switch ${p.engaged ? "engaged" : "released"} by ${p.by}${p.reason ? `: ${p.reason}` : ""}`
    : `risk: ${JSON.stringify(p)}`;
  return `${n.kind}: ${JSON.stringify(p).slice(0, 120)}`;
}
