// The /ws connection: reconnects with back-off after a drop or a server restart, shows
// its state, and sends the subscriptions again on each new connection.

export type StreamState = "connecting" | "live" | "down";
export type Message = { type: string; [key: string]: any };

/** Open an authenticated /ws connection: the one place that knows how the stream
 * learns who we are. The token goes as the second of the subprotocols "bearer",
 * <token>, never in the URL (which servers and proxies log); ``legacy``: in the query
 * string, for a server from before that form (whose handshake refuses the first). */
export function openAuthenticated(token: string, legacy = false): WebSocket {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  return legacy ? new WebSocket(`${url}?token=${encodeURIComponent(token)}`)
                : new WebSocket(url, ["bearer", token]);
}

export interface Subscription {
  channels: string[];
  symbols: string[];
  depth?: number | null;
}

export class Stream {
  state: StreamState = "down";
  private socket: WebSocket | null = null;
  private subs = new Map<string, Subscription>();
  private retry = 500;
  private closed = false;
  private legacy = false;
  private flipped = false;

  constructor(private token: () => Promise<string>,
              private onMessage: (m: Message) => void,
              private onState: (s: StreamState) => void) {}

  start(): void {
    this.closed = false;
    void this.connect();
  }

  stop(): void {
    this.closed = true;
    this.socket?.close(1000);
    this.socket = null;
    this.set("down");
  }

  /** Keep a subscription under ``key``, replacing the previous one of that key (its
   * symbols unsubscribed). */
  subscribe(key: string, sub: Subscription): void {
    const old = this.subs.get(key);
    if (old) {
      const gone = old.symbols.filter((s) => !sub.symbols.includes(s));
      if (gone.length) this.send({ op: "unsubscribe", channels: old.channels, symbols: gone });
    }
    this.subs.set(key, sub);
    if (sub.symbols.length) this.send({ op: "subscribe", ...sub });
  }

  send(message: object): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    this.set("connecting");
    let socket: WebSocket;
    try {
      socket = openAuthenticated(await this.token(), this.legacy);
    } catch {
      this.later();
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.retry = 500;
      this.set("live");
      for (const sub of this.subs.values()) {
        if (sub.symbols.length) this.send({ op: "subscribe", ...sub });
      }
    };
    socket.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    socket.onclose = (e) => {
      if (this.socket !== socket) return;
      this.socket = null;
      // the handshake or the token's form refused (or the server is away): the other
      // form next, at once the first time; a connection that worked keeps its form
      const refused = !opened || e.code === 1008;
      if (refused) {
        this.legacy = !this.legacy;
        if (!this.flipped) {
          this.flipped = true;
          void this.connect();
          return;
        }
      } else {
        this.flipped = false;
      }
      this.later();
    };
  }

  private later(): void {
    if (this.closed) return;
    this.set("down");
    setTimeout(() => void this.connect(), this.retry);
    this.retry = Math.min(this.retry * 2, 5000);
  }

  private set(s: StreamState): void {
    this.state = s;
    this.onState(s);
  }
}
