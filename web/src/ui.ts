// Small DOM helpers: elements from a tag, attributes and children; toasts.

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
    tag: K, attrs: Record<string, any> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k in el && k !== "list") (el as any)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** Replace ``el``'s children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c) => c != null && c !== false)
    .map((c) => (c instanceof Node ? c : String(c))));
}

export function toast(text: string, kind: "info" | "error" = "info"): void {
  let box = document.getElementById("toasts");
  if (!box) document.body.append(box = h("div", { id: "toasts", role: "status", "aria-live": "polite" }));
  const t = h("div", { class: `toast ${kind}` }, text);
  box.append(t);
  while (box.children.length > 4) box.firstElementChild!.remove();
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 5000);
}

export function table(headers: string[], rows: Child[][], numeric: Set<number> = new Set()):
    HTMLTableElement {
  return h("table", {},
    h("thead", {}, h("tr", {}, ...headers.map((x, i) => h("th", { class: numeric.has(i) ? "num" : "" }, x)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) =>
      h("td", { class: numeric.has(i) ? "num" : "" }, c))))));
}

export function time(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso.endsWith("Z") || /[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z");
  return d.toISOString().slice(11, 19);
}
