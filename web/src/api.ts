// The API session: tokens kept in localStorage (a reload keeps the user logged in), the
// access token refreshed before it expires and once more on a 401, one refresh at a time.

const KEY = "t2t.session";

interface Tokens {
  access_token: string;
  refresh_token: string;
  /** Milliseconds since the epoch at which the access token expires. */
  expires_at: number;
}

export class ApiError extends Error {
  constructor(readonly status: number, detail: string) {
    super(detail);
  }
}

/** The server's ``detail`` as one line (pydantic's list of errors included). */
function detailText(body: unknown, status: number): string {
  const d = (body as { detail?: unknown } | null)?.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) {
    return d.map((e) => `${(e.loc ?? []).slice(1).join(".")}: ${e.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export class Api {
  private tokens: Tokens | null = null;
  private refreshing: Promise<void> | null = null;
  private timer: number | undefined;
  /** Called when the session ends (logout, or a refresh the server refused). */
  onLogout: () => void = () => {};

  constructor() {
    const saved = localStorage.getItem(KEY);
    if (saved) {
      try {
        this.tokens = JSON.parse(saved);
        this.schedule();
      } catch {
        localStorage.removeItem(KEY);
      }
    }
  }

  get loggedIn(): boolean {
    return this.tokens != null;
  }

  async login(username: string, password: string): Promise<void> {
    this.store(await this.call("POST", "/auth/login", { username, password }, false));
  }

  async register(username: string, email: string, password: string): Promise<void> {
    await this.call("POST", "/auth/register", { username, email, password }, false);
  }

  async logout(): Promise<void> {
    const t = this.tokens;
    if (t) {
      try {
        await this.call("POST", "/auth/logout", { refresh_token: t.refresh_token });
      } catch {
        // the tokens are dropped here all the same
      }
    }
    this.end();
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    if (!this.tokens) throw new ApiError(401, "not logged in");
    if (this.tokens.expires_at - Date.now() < 10_000) await this.refresh();
    return this.tokens!.access_token;
  }

  /** Get a new token pair with the refresh token (rotated by the server). */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const t = this.tokens;
        if (!t) throw new ApiError(401, "not logged in");
        this.store(await this.call("POST", "/auth/refresh", { refresh_token: t.refresh_token },
                                   false));
      } catch (e) {
        if (e instanceof ApiError && e.status < 500 && e.status !== 429) this.end();
        throw e;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  get<T = any>(path: string): Promise<T> {
    return this.call("GET", path);
  }

  /** A request; with ``auth`` the bearer token, and one refresh and retry on a 401. */
  async call<T = any>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const send = async () => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (auth) headers["Authorization"] = `Bearer ${await this.accessToken()}`;
      return fetch(path, { method, headers,
                           body: body === undefined ? undefined : JSON.stringify(body) });
    };
    let r = await send();
    if (r.status === 401 && auth && this.tokens) {
      await this.refresh();
      r = await send();
    }
    if (r.status === 204) return undefined as T;
    const type = r.headers.get("Content-Type") ?? "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) throw new ApiError(r.status, detailText(data, r.status));
    return data as T;
  }

  /** A file the API answers (the transactions CSV/PDF), saved through the browser. */
  async download(path: string, filename: string): Promise<void> {
    const r = await fetch(path, { headers: { Authorization: `Bearer ${await this.accessToken()}` } });
    if (!r.ok) throw new ApiError(r.status, `download failed: HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = Object.assign(document.createElement("a"), { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  private store(t: { access_token: string; refresh_token: string; expires_in: number }): void {
    this.tokens = { access_token: t.access_token, refresh_token: t.refresh_token,
                    expires_at: Date.now() + t.expires_in * 1000 };
    localStorage.setItem(KEY, JSON.stringify(this.tokens));
    this.schedule();
  }

  /** Refresh at four fifths of the token's life, so a stream reconnect never waits. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.tokens) return;
    const wait = Math.max(1000, (this.tokens.expires_at - Date.now()) * 0.8);
    this.timer = window.setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  private end(): void {
    clearTimeout(this.timer);
    this.tokens = null;
    localStorage.removeItem(KEY);
    this.onLogout();
  }
}
