// The client's shell: log in or register, then the trader's screen (#/trade) or, for
// operators and admins, the console (#/operator); the stream's state in the header.

import "./style.css";
import { Api, ApiError } from "./api";
import { OperatorScreen } from "./operator";
import { Stream, type StreamState } from "./stream";
import { TraderScreen } from "./trader";
import { fill, h, toast } from "./ui";

const api = new Api();
const root = document.getElementById("app")!;
let stream: Stream | null = null;
let screens: { trader: TraderScreen; operator: OperatorScreen | null } | null = null;

api.onLogout = () => {
  stream?.stop();
  screens?.trader.stop();
  screens?.operator?.stop();
  stream = null;
  screens = null;
  showLogin();
};

function showLogin(message = ""): void {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const email = h("input", { name: "email", type: "email", autocomplete: "email" });
  const error = h("p", { class: "error", role: "alert" }, message);
  const act = async (register: boolean) => {
    error.textContent = "";
    try {
      if (register) {
        if (!email.value) throw new Error("registering needs an e-mail address");
        await api.register(user.value, email.value, pass.value);
      }
      await api.login(user.value, pass.value);
      await showApp();
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  };
  const form = h("form", { class: "login", "aria-label": "Log in" },
    h("h1", {}, "tick2trade"),
    h("label", {}, "username", user), h("label", {}, "password", pass),
    h("label", {}, "e-mail (to register)", email),
    h("div", {}, h("button", { type: "submit" }, "Log in"), " ",
      h("button", { type: "button", onclick: () => void act(true) }, "Register")),
    error);
  form.onsubmit = (e) => {
    e.preventDefault();
    void act(false);
  };
  fill(root, form);
  user.focus();
}

async function showApp(): Promise<void> {
  const me = await api.get("/users/me");
  const operator = me.role === "operator" || me.role === "admin";
  const state = h("span", { id: "stream-state", class: "state down" }, "down");
  const nav = h("nav", {},
    h("a", { href: "#/trade" }, "Trade"),
    operator ? h("a", { href: "#/operator" }, "Operator") : null,
    h("a", { href: "/docs", target: "_blank" }, "API"));
  const header = h("header", {}, h("strong", {}, "tick2trade"), nav,
    h("span", { class: "grow" }), "stream ", state,
    h("span", { id: "user" }, ` ${me.username} (${me.role}) `),
    h("button", { onclick: () => void api.logout() }, "Log out"));
  let wasLive = false;
  let ready: TraderScreen | null = null;     // messages before the screen exists are dropped
  stream = new Stream(() => api.accessToken(), (m) => ready?.onMessage(m), (s: StreamState) => {
    state.textContent = s;
    state.className = `state ${s}`;
    if (s === "live" && wasLive) ready?.onReconnect();
    if (s === "live") wasLive = true;
  });
  const trader = ready = new TraderScreen(api, stream);
  screens = { trader, operator: operator ? new OperatorScreen(api, me.role) : null };
  const body = h("div", { class: "body" });
  fill(root, header, body);
  stream.start();
  await trader.start();
  const route = () => {
    const page = location.hash === "#/operator" ? "operator" : "trade";
    screens?.operator?.stop();
    if (page === "operator") {
      if (!screens?.operator) {
        fill(body, h("p", { class: "error" }, "The operator console needs the operator or admin role."));
        return;
      }
      fill(body, screens.operator.el);
      screens.operator.start();
    } else {
      fill(body, trader.el);
    }
    for (const a of nav.querySelectorAll("a")) a.classList.toggle("on", a.getAttribute("href") === `#/${page}`);
  };
  window.onhashchange = route;
  route();
}

if (api.loggedIn) {
  showApp().catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) toast((e as Error).message, "error");
    if (!api.loggedIn) showLogin();
  });
} else {
  showLogin();
}
