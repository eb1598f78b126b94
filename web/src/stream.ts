// The /ws connection: reconnects with back-off after a drop or a server restart, shows
// its state, and sends the subscriptions again on each new connection.

export type StreamState = "connecting" | "live" | "down";
export type Message = { type: string; [key: string]: any };

/** Open an authenticated /ws connection. The one place that knows how the stream
 * learns who we are: today the access token in the query string. */
export function openAuthenticated(token: string): WebSocket {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
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
      socket = openAuthenticated(await this.token());
    } catch {
      this.later();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 500;
      this.set("live");
      for (const sub of this.subs.values()) {
        if (sub.symbols.length) this.send({ op: "subscribe", ...sub });
      }
    };
    socket.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    socket.onclose = () => {
      if (this.socket === socket) {
        this.socket = null;
        this.later();
      }
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
