/**
 * tollgate-client — a small, dependency-free client for the tollgate auth service,
 * for browsers, React Native and Node (anything with a WHATWG `fetch`).
 *
 *   const auth = new TollgateClient({ baseUrl: "https://auth.example.com" });
 *   await auth.login({ username, password });
 *   const res = await auth.fetch("https://api.example.com/orders"); // bearer added, refreshed as needed
 *
 * Why it exists: with tokens instead of sessions every app must store them, add the
 * header, refresh before/at expiry and never let two refreshes of one token race
 * (tollgate treats a late replay of a rotated refresh token as theft and ends the
 * session). This file does that once, in one place.
 *
 * It is a single module on purpose: tollgate's demo page serves the compiled file as is.
 */

// ---------------------------------------------------------------------------
// Wire types (see the API contract)

export interface User {
  id: string;
  username: string;
  email: string | null;
  /**
   * Whether `email` was confirmed through a mailed link (verification, a password reset by
   * mail, or an admin). False while there is no address.
   */
  email_verified: boolean;
  /** The user's roles, sorted (possibly empty); the access token's `roles` claim too. */
  roles: string[];
  /**
   * Whether the account has a confirmed second factor (TOTP): its logins then take two
   * steps (`login()` answers `kind: "mfa_required"`, then `completeMfaLogin()`).
   */
  mfa_enabled: boolean;
  created_at: string;
}

/** The body of signup, login, refresh and password change. */
export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  /** Absent in cookie mode: the server sets it as an HttpOnly cookie instead. */
  refresh_token?: string;
  refresh_expires_in: number;
  user: User;
}

/** A session just started (signup, login, its second step, password reset): the token response, stored. */
export type SessionStarted = TokenResponse & { kind: "session" };

/**
 * The first step of a login (or a password reset by mail) of an account with a second
 * factor: the password was right, but there are no tokens yet. Pass `mfaToken` and a code
 * from the user's authenticator app (or one of their recovery codes) to
 * `completeMfaLogin()` within `expiresIn` seconds. Nothing is stored.
 */
export interface MfaRequired {
  kind: "mfa_required";
  /** `tgf_…`: single-use, and dead after five wrong codes (then log in again). */
  mfaToken: string;
  /** What the second step takes: `["totp", "recovery_code"]`. */
  methods: string[];
  /** Seconds the `mfaToken` lives (300). */
  expiresIn: number;
}

/** What `login()` and `resetPassword()` resolve with: a session, or the second step to take. */
export type LoginResult = SessionStarted | MfaRequired;

/** `setupTotp()`: the secret to show (as text and, from `otpauth_uri`, as a QR code). */
export interface TotpSetup {
  /** Base32 (RFC 4648, no padding), for typing into an authenticator app. */
  secret: string;
  /** `otpauth://totp/<issuer>:<username>?secret=…&issuer=…`: what the QR code holds. */
  otpauth_uri: string;
}

/** One of the user's sessions (devices), as `GET /auth/sessions` lists them. */
export interface Session {
  /** The session id: the access token's `sid` claim. */
  id: string;
  /** RFC 3339 times. */
  created_at: string;
  last_used_at: string;
  expires_at: string;
  /** As the device sent them when the session started or last refreshed; null when unknown. */
  user_agent: string | null;
  ip: string | null;
  /** Whether this is the session of the token that asked. */
  current: boolean;
}

/**
 * Which sessions `logout` ends: `"local"` this one, `"others"` every other session of the
 * user (this one stays logged in), `"global"` all of them.
 */
export type LogoutScope = "local" | "others" | "global";

/** What the client keeps in its storage. */
export interface Tokens {
  accessToken: string;
  /** Never present in cookie mode: the browser keeps the refresh token in an HttpOnly cookie. */
  refreshToken?: string;
  /**
   * When the access token expires, in unix seconds by this device's clock (receipt time +
   * `expires_in`, so a device whose clock is off still refreshes on time). When missing,
   * the token's own `exp` claim is used.
   */
  expiresAt?: number;
  /** The access token's lifetime in seconds, as the server announced it. */
  expiresIn?: number;
  user?: User;
}

// ---------------------------------------------------------------------------
// Errors

/** Every failure of the client's auth calls: the server's `{error, code}` plus the HTTP status. */
export class AuthError extends Error {
  /** The server's human-readable message (also `message`): show it to the user. */
  readonly error: string;
  /** The server's snake_case code, e.g. `invalid_credentials`; `network_error` when no answer came. */
  readonly code: string;
  /** HTTP status; 0 when the request never got an answer. */
  readonly status: number;
  /** Seconds from `Retry-After` (429, 503), when the server sent it. */
  readonly retryAfter: number | undefined;

  constructor(error: string, code: string, status: number, options?: { retryAfter?: number; cause?: unknown }) {
    super(error, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AuthError";
    this.error = error;
    this.code = code;
    this.status = status;
    this.retryAfter = options?.retryAfter;
  }

  /** Builds the error from a failed response, whatever its body turns out to be. */
  static async fromResponse(response: Response): Promise<AuthError> {
    const retry = Number(response.headers.get("retry-after"));
    const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      // Not JSON (a proxy's HTML page, an empty body): fall back to the status line.
    }
    const b = body as { error?: unknown; code?: unknown } | null;
    const error = typeof b?.error === "string" ? b.error : `HTTP ${response.status} ${response.statusText}`.trim();
    const code = typeof b?.code === "string" ? b.code : "http_error";
    return new AuthError(error, code, response.status, { retryAfter });
  }
}

// ---------------------------------------------------------------------------
// Storage

/** Where tokens live. Methods may be sync or async (React Native secure storage is async). */
export interface TokenStorage {
  get(): Promise<Tokens | null> | Tokens | null;
  set(tokens: Tokens): Promise<void> | void;
  clear(): Promise<void> | void;
}

/** The default: tokens live as long as the page / process. Nothing for XSS to find on disk. */
export class MemoryStorage implements TokenStorage {
  private tokens: Tokens | null = null;
  get(): Tokens | null {
    return this.tokens;
  }
  set(tokens: Tokens): void {
    this.tokens = tokens;
  }
  clear(): void {
    this.tokens = null;
  }
}

/** The subset of the Web Storage API that `LocalStorageStorage` uses. */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Tokens in `localStorage`, shared by every tab of the origin (as the old Django front end
 * kept its state). Any script on the page can read them: prefer cookie mode in browsers.
 */
export class LocalStorageStorage implements TokenStorage {
  private readonly key: string;
  private readonly store: WebStorageLike;

  constructor(key = "tollgate.tokens", store?: WebStorageLike) {
    const found = store ?? (globalThis as { localStorage?: WebStorageLike }).localStorage;
    if (!found) throw new Error("LocalStorageStorage: no localStorage here; pass a storage object");
    this.key = key;
    this.store = found;
  }
  get(): Tokens | null {
    const raw = this.store.getItem(this.key);
    if (!raw) return null;
    try {
      const parsed = JSON.parse(raw) as Tokens;
      return typeof parsed?.accessToken === "string" ? parsed : null;
    } catch {
      return null; // a corrupt entry means "logged out", not a crash on every call
    }
  }
  set(tokens: Tokens): void {
    this.store.setItem(this.key, JSON.stringify(tokens));
  }
  clear(): void {
    this.store.removeItem(this.key);
  }
}

// ---------------------------------------------------------------------------
// Cross-tab locks: one tab refreshes, the others wait and then read its result.

/**
 * Runs `task` while holding the lock `name`, exclusive across tabs of this origin.
 * `contended` tells the task that another tab held the lock first (and so has probably
 * just refreshed).
 */
export type CrossTabLock = <T>(name: string, task: (contended: boolean) => Promise<T>) => Promise<T>;

/** No cross-tab coordination (Node, React Native: one process, the in-memory single flight suffices). */
export const noLock: CrossTabLock = (_name, task) => task(false);

interface LockManagerLike {
  request<T>(name: string, options: { ifAvailable?: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
  request<T>(name: string, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

/** The Web Locks API (every current browser): exact, and released when a tab dies. */
export function webLocks(): CrossTabLock | null {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  if (!locks || typeof locks.request !== "function") return null;
  return async (name, task) => {
    // Free: take it at once. Held by another tab: queue for it, and say so to the task.
    const now = await locks.request(name, { ifAvailable: true }, async (lock) =>
      lock ? { value: await task(false) } : null,
    );
    return now ? now.value : locks.request(name, () => task(true));
  };
}

type LockMessage = { t: "ask" | "busy" | "done"; id: string };

/**
 * A best-effort lock over BroadcastChannel for browsers without Web Locks. A tab asks;
 * the holder answers "busy" and later says "done"; two tabs asking at once defer to the
 * smaller id. Should it still race (a tab frozen mid-handshake), tollgate's refresh grace
 * window gives both tabs the same successor token, so nobody is logged out.
 */
export function broadcastChannelLock(waitMs = 50, maxHoldMs = 15_000): CrossTabLock | null {
  if (typeof BroadcastChannel !== "function") return null;
  return async (name, task) => {
    const channel = new BroadcastChannel(name);
    // Time first, so that ids order tabs roughly first come, first served.
    const id = `${Date.now().toString(36).padStart(10, "0")}-${Math.random().toString(36).slice(2)}`;
    let holding = false;
    let contended = false;
    let wake: ((message: LockMessage) => void) | null = null;
    channel.onmessage = (event: MessageEvent<LockMessage>) => {
      const message = event.data;
      // Whoever holds the lock, or asked before a newcomer (smaller id), tells the newcomer to
      // wait: a tab that opened its channel after our "ask" never saw it.
      if (message.t === "ask" && (holding || message.id > id)) channel.postMessage({ t: "busy", id } satisfies LockMessage);
      else wake?.(message);
    };
    try {
      // Contend until a round passes in which nobody holds the lock or outranks us.
      for (;;) {
        const blocker = await new Promise<string | null>((resolve) => {
          const timer = setTimeout(() => resolve(null), waitMs);
          wake = (m) => {
            if (m.t === "busy" || (m.t === "ask" && m.id < id)) {
              clearTimeout(timer);
              resolve(m.id);
            }
          };
          channel.postMessage({ t: "ask", id } satisfies LockMessage);
        });
        if (blocker === null) break;
        contended = true;
        // Wait for the other tab's "done" (or give up on it if it died holding the lock).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, maxHoldMs);
          wake = (m) => {
            if (m.t === "done" && m.id === blocker) {
              clearTimeout(timer);
              resolve();
            }
          };
        });
      }
      holding = true;
      return await task(contended);
    } finally {
      wake = null;
      if (holding) channel.postMessage({ t: "done", id } satisfies LockMessage);
      channel.close();
    }
  };
}

/** Web Locks where there are any, else BroadcastChannel in a browser page, else none. */
function defaultLock(): CrossTabLock {
  const inBrowserPage = typeof (globalThis as { document?: unknown }).document !== "undefined";
  return webLocks() ?? (inBrowserPage ? broadcastChannelLock() : null) ?? noLock;
}

// ---------------------------------------------------------------------------
// JWT payload decoding (only to read `exp`; the client never needs to trust it)

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The claims of a JWT, unverified; null if it is not one. No atob/TextDecoder needed (React Native). */
export function decodeJwtPayload(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  let value = 0;
  let bits = 0;
  let percentEncoded = "";
  for (const ch of part.replace(/=+$/, "")) {
    const digit = BASE64URL.indexOf(ch);
    if (digit < 0) return null;
    value = ((value << 6) | digit) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      percentEncoded += "%" + ((value >> bits) & 0xff).toString(16).padStart(2, "0");
    }
  }
  try {
    const claims: unknown = JSON.parse(decodeURIComponent(percentEncoded));
    return claims !== null && typeof claims === "object" ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// The client

export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

export interface TollgateClientOptions {
  /** Where tollgate is, e.g. "https://auth.example.com"; "" for the page's own origin. */
  baseUrl: string;
  /** Default: `new MemoryStorage()`. */
  storage?: TokenStorage;
  /** Default: the global `fetch`. Wrap it to add logging, or in tests to count requests. */
  fetch?: FetchLike;
  /**
   * Refresh this many seconds before the access token expires (default 30), but never
   * earlier than half its lifetime, so that short-lived tokens are not refreshed on every call.
   */
  refreshLeewaySecs?: number;
  /**
   * "body" (default): the refresh token is in the JSON and kept in `storage` (native apps).
   * "cookie": for browsers against a server with REFRESH_TOKEN_COOKIE=true; the refresh token
   * stays in an HttpOnly cookie that script never sees.
   */
  mode?: "body" | "cookie";
  /** Cross-tab coordination of refreshes. Default: Web Locks, else BroadcastChannel, else none. */
  lock?: CrossTabLock;
  /** Called whenever the stored tokens change (login, refresh, logout, session ended). */
  onChange?: (tokens: Tokens | null) => void;
}

const CSRF_HEADER = "X-Tollgate-CSRF";
const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };

const nowSecs = () => Date.now() / 1000;

export class TollgateClient {
  readonly baseUrl: string;
  readonly mode: "body" | "cookie";
  readonly storage: TokenStorage;
  private readonly fetchImpl: FetchLike;
  private readonly leewaySecs: number;
  private readonly lock: CrossTabLock;
  private readonly onChange: ((tokens: Tokens | null) => void) | undefined;
  /** The refresh in flight in this tab/process, which every concurrent caller awaits. */
  private inflight: Promise<Tokens> | null = null;

  constructor(options: TollgateClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.mode = options.mode ?? "body";
    this.storage = options.storage ?? new MemoryStorage();
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    const chosen = options.fetch ?? globalFetch?.bind(globalThis); // unbound window.fetch throws "Illegal invocation"
    if (!chosen) throw new Error("TollgateClient: no fetch available; pass options.fetch");
    this.fetchImpl = chosen;
    this.leewaySecs = options.refreshLeewaySecs ?? 30;
    this.lock = options.lock ?? defaultLock();
    this.onChange = options.onChange;
  }

  // -- account calls ---------------------------------------------------------

  /** POST /auth/signup; stores the new session. */
  async signup(input: { username: string; password: string; email?: string | null }): Promise<TokenResponse> {
    const body: Record<string, string> = { username: input.username, password: input.password };
    if (input.email) body.email = input.email;
    return this.startSession(await this.authCall<TokenResponse>("/auth/signup", body));
  }

  /**
   * POST /auth/login. Resolves with `{ kind: "session", ...tokenResponse }`, stored (with
   * SESSIONS_PER_USER=1 the server ends the user's previous session), or, for an account
   * with a second factor, `{ kind: "mfa_required", mfaToken, methods, expiresIn }` and
   * nothing stored: ask for a code and call `completeMfaLogin(mfaToken, code)`.
   * A wrong password throws AuthError 401 `invalid_credentials` as before.
   */
  async login(input: { username: string; password: string }): Promise<LoginResult> {
    const body = { username: input.username, password: input.password };
    return this.signIn(await this.authCall<TokenResponse | MfaRequiredBody>("/auth/login", body));
  }

  /**
   * POST /auth/login/mfa: the second step of a login that answered `mfa_required`, with a
   * 6-digit code of the user's authenticator app or one of their recovery codes. Stores the
   * session as `login()` does; its access token's `amr` is `["mfa", "otp", "pwd"]`.
   * 401 `invalid_mfa_code`: wrong, or a code already used (a TOTP code works once, as does a
   * recovery code); the `mfaToken` stays usable for another try. 401 `invalid_mfa_token`:
   * expired (after `expiresIn`), used, or dead after five wrong codes: log in again.
   * Wrong codes count toward the username's login lockout (then 429 `rate_limited`).
   */
  async completeMfaLogin(mfaToken: string, code: string): Promise<SessionStarted> {
    const response = await this.authCall<TokenResponse>("/auth/login/mfa", { mfa_token: mfaToken, code });
    return { kind: "session", ...(await this.startSession(response)) };
  }

  /**
   * Ends the session on the server (revoking the refresh token) and forgets the tokens.
   * Local state is cleared even if the server cannot be reached; that error is still thrown.
   * `scope: "others"` ends the user's other sessions and keeps this one (and its tokens);
   * `"global"` ends all of them.
   */
  async logout(options: { scope?: LogoutScope } = {}): Promise<void> {
    const scope = options.scope ?? "local";
    await this.inflight?.catch(() => undefined); // a refresh finishing later would store tokens again
    const tokens = await this.storage.get();
    // "local" sends exactly what a server without scopes understands.
    const scoped = scope === "local" ? undefined : { scope };
    try {
      if (this.mode === "cookie" && scope === "others") {
        // By access token (renewed through the cookie when needed) and without the cookie: the
        // server clears a cookie it is sent, and this session goes on.
        await this.bearerCall("/auth/logout", { method: "POST", headers: this.authHeaders(), body: JSON.stringify(scoped) });
      } else if (this.mode === "cookie") {
        await this.authCall("/auth/logout", scoped); // the cookie identifies the session; the server clears it
      } else if (tokens?.refreshToken) {
        // By refresh token: works even when the access token has already expired.
        await this.authCall("/auth/logout", { refresh_token: tokens.refreshToken, ...scoped });
      } else if (tokens) {
        await this.authCall("/auth/logout", scoped, tokens.accessToken);
      }
    } catch (e) {
      // 401: this session was already over (expired, revoked, logged out elsewhere), which is all
      // "local" asked for. For the other scopes it means the other sessions were not ended.
      if (!(scope === "local" && e instanceof AuthError && e.status === 401)) throw e;
    } finally {
      if (scope !== "others") await this.forget();
    }
  }

  /** GET /auth/sessions: the user's sessions, most recently used first. */
  async sessions(): Promise<Session[]> {
    const response = await this.bearerCall("/auth/sessions", { headers: { Accept: "application/json" } });
    return ((await response.json()) as { sessions: Session[] }).sessions;
  }

  /**
   * DELETE /auth/sessions/{id}: signs that device out at once (its refresh and access tokens
   * stop working). For this client's own session it is `logout()`, which also forgets the tokens.
   */
  async endSession(id: string): Promise<void> {
    const tokens = await this.storage.get();
    if (tokens && decodeJwtPayload(tokens.accessToken)?.sid === id) return this.logout();
    await this.bearerCall(`/auth/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** GET /auth/me with the bearer token, refreshing if needed. */
  async me(): Promise<User> {
    const response = await this.bearerCall("/auth/me", { headers: { Accept: "application/json" } });
    return (await response.json()) as User;
  }

  /** POST /auth/password; the server starts a new session, which is stored. */
  async changePassword(currentPassword: string, newPassword: string): Promise<TokenResponse> {
    const response = await this.bearerCall("/auth/password", {
      method: "POST",
      headers: this.authHeaders(),
      credentials: this.mode === "cookie" ? "include" : "same-origin", // the new session's cookie
      body: JSON.stringify({ current_password: currentPassword, new_password: newPassword }),
    });
    return this.startSession((await response.json()) as TokenResponse);
  }

  // -- mail: password reset, email verification and change ------------------
  // A server without SMTP_URL answers all of these with 404 `not_found`.

  /**
   * POST /auth/password/forgot: asks for a reset mail. Resolves (202) whether or not an
   * account has the address, so the answer tells nothing about who is registered; every
   * enabled account with it gets a mail with a link `…/auth/password/reset?token=…`, at most
   * one per account per MAIL_COOLDOWN_SECS. 429 `rate_limited` (with `retryAfter`) as for logins.
   */
  async forgotPassword(email: string): Promise<void> {
    await this.authCall("/auth/password/forgot", { email });
  }

  /**
   * POST /auth/password/reset with the token from the mailed link. The server ends every
   * session of the account and starts a new one, which is stored (as after a login).
   * 401 `invalid_reset_token` (unknown, used, replaced by a newer mail, or expired);
   * 422 `validation_failed` for a password the rules refuse (the token stays usable);
   * 403 `account_disabled`. For an account with a second factor the password is set and the
   * sessions end all the same, but the answer is `kind: "mfa_required"` (the mail proves the
   * address, not the factor): finish with `completeMfaLogin()`, as after `login()`.
   */
  async resetPassword(token: string, newPassword: string): Promise<LoginResult> {
    const body = { token, new_password: newPassword };
    return this.signIn(await this.authCall<TokenResponse | MfaRequiredBody>("/auth/password/reset", body));
  }

  // -- second factor: TOTP and recovery codes --------------------------------

  /**
   * POST /auth/mfa/totp/setup (bearer): a new TOTP secret, not active until
   * `confirmTotp()`. Show `otpauth_uri` as a QR code and `secret` as text. A new setup
   * before confirming replaces the pending secret. With a factor already on, `code` (a code
   * of it) is needed too. 401 `invalid_credentials` for a wrong password, `invalid_mfa_code`
   * for a missing or wrong code (the session goes on either way).
   */
  async setupTotp(currentPassword: string, code?: string): Promise<TotpSetup> {
    const body: Record<string, string> = { current_password: currentPassword };
    if (code !== undefined) body.code = code;
    return (await this.bearerJson("/auth/mfa/totp/setup", "POST", body)) as TotpSetup;
  }

  /**
   * POST /auth/mfa/totp/confirm (bearer) with a code of the secret just set up: the factor
   * is on, and these are its ten recovery codes, each good for one sign-in. Show them once;
   * the server keeps only their hashes. 401 `invalid_mfa_code` otherwise.
   */
  async confirmTotp(code: string): Promise<string[]> {
    return ((await this.bearerJson("/auth/mfa/totp/confirm", "POST", { code })) as RecoveryCodesBody).recovery_codes;
  }

  /** DELETE /auth/mfa/totp (bearer) with a TOTP or recovery code: the factor and its recovery codes are gone. */
  async disableTotp(code: string): Promise<void> {
    await this.bearerJson("/auth/mfa/totp", "DELETE", { code });
  }

  /** POST /auth/mfa/recovery-codes (bearer) with a TOTP or recovery code: a new set of ten; the old set stops working. */
  async newRecoveryCodes(code: string): Promise<string[]> {
    return ((await this.bearerJson("/auth/mfa/recovery-codes", "POST", { code })) as RecoveryCodesBody).recovery_codes;
  }

  /**
   * POST /auth/email/verify with the token from a verification mail (after signup with an
   * email, `resendVerificationEmail()` or `changeEmail()`): the user object, now with
   * `email_verified: true` (and, after a change, the new address). Needs no login, as the link
   * may be opened on another device. Single use: 401 `invalid_verification_token` otherwise.
   * The stored `getTokens().user` is not updated until the next login or refresh; `me()` is.
   */
  async verifyEmail(token: string): Promise<User> {
    return this.authCall<User>("/auth/email/verify", { token });
  }

  /** POST /auth/email/verify/resend (bearer): mails a new verification link to the user's address. */
  async resendVerificationEmail(): Promise<void> {
    const response = await this.bearerCall("/auth/email/verify/resend", { method: "POST", headers: this.authHeaders() });
    await response.text(); // `{}`
  }

  /**
   * POST /auth/email (bearer): asks to change the address to `email`. A verification mail
   * goes to the new address and a notice to the old one; the address changes (verified) only
   * when the new address's link is used (`verifyEmail`). Until then `me()` shows the old one.
   * A wrong password is 401 `invalid_credentials` (the session goes on).
   */
  async changeEmail(email: string, currentPassword: string): Promise<void> {
    const response = await this.bearerCall("/auth/email", {
      method: "POST",
      headers: this.authHeaders(),
      body: JSON.stringify({ email, current_password: currentPassword }),
    });
    await response.text(); // `{}`
  }

  /** The stored tokens, or null when logged out. */
  async getTokens(): Promise<Tokens | null> {
    return (await this.storage.get()) ?? null;
  }

  /**
   * Trades the refresh token for a new pair now. Concurrent callers (in this tab and, via
   * the lock, in other tabs) share one request. Throws AuthError; a 401 means the session
   * is over and the stored tokens are forgotten.
   */
  refresh(): Promise<Tokens> {
    return this.singleFlight(undefined);
  }

  // -- authorised requests ---------------------------------------------------

  /**
   * `fetch` with `Authorization: Bearer <access token>`. Refreshes first when the token
   * is about to expire, and once more (then retries once) if the answer is a 401 about the
   * token. Relative URLs are resolved against `baseUrl`. Resolves with the Response like
   * `fetch` does; throws AuthError only when the session cannot be renewed.
   */
  async fetch(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    let tokens = (await this.storage.get()) ?? null;
    if (tokens && this.expiresSoon(tokens) && this.canRefresh(tokens)) {
      try {
        tokens = await this.singleFlight(tokens.accessToken);
      } catch (e) {
        // A failed early refresh is harmless while the current token still works (a network blip).
        if ((e instanceof AuthError && e.status === 401) || this.expired(tokens)) throw e;
      }
    }
    const first = await this.send(input, init, tokens);
    if (first.status !== 401 || !this.canRefresh(tokens) || !(await isTokenRejection(first))) return first;
    const renewed = await this.singleFlight(tokens?.accessToken ?? null);
    return this.send(input, init, renewed);
  }

  // -- internals -------------------------------------------------------------

  /**
   * One refresh for everyone: concurrent callers in this tab share `inflight`; other tabs are
   * kept out by the cross-tab lock. `stale` is the access token the caller found wanting
   * (null: it had none; undefined: refresh regardless).
   */
  private singleFlight(stale: string | null | undefined): Promise<Tokens> {
    this.inflight ??= this.lock(`tollgate-refresh ${this.baseUrl}`, (contended) =>
      this.refreshLocked(stale, contended),
    ).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async refreshLocked(stale: string | null | undefined, contended: boolean): Promise<Tokens> {
    // Re-read under the lock: another tab may have refreshed while we waited. Using its
    // tokens instead of refreshing again is what keeps tabs from replaying a rotated token.
    let current = (await this.storage.get()) ?? null;
    if (contended && stale !== undefined && current?.accessToken === stale && !(this.storage instanceof MemoryStorage)) {
      // The tab that held the lock has most likely stored new tokens, but localStorage reaches
      // other tabs asynchronously and can lag the lock's release by a few milliseconds: give it
      // a moment. (Were it later still, the server's reuse grace returns the same successor.)
      for (let i = 0; i < 20 && current?.accessToken === stale; i++) {
        await new Promise((done) => setTimeout(done, 25));
        current = (await this.storage.get()) ?? null;
      }
    }
    if (stale !== undefined && current && current.accessToken !== stale && !this.expiresSoon(current)) {
      return current;
    }
    let body: object | undefined;
    if (this.mode === "body") {
      if (!current?.refreshToken) throw new AuthError("Not logged in", "not_logged_in", 401);
      body = { refresh_token: current.refreshToken };
    } else {
      body = {}; // the HttpOnly cookie carries the token
    }
    try {
      return await this.store(await this.authCall<TokenResponse>("/auth/refresh", body));
    } catch (caught) {
      let e = caught;
      // Cookie mode without a cookie (never logged in, or cleared): tollgate finds no token in
      // the cookie nor the body and rejects the request itself. For the app it means "log in".
      if (this.mode === "cookie" && e instanceof AuthError && (e.status === 400 || e.status === 422)) {
        e = new AuthError("Not logged in", "not_logged_in", 401, { cause: e });
      }
      if (e instanceof AuthError && e.status === 401) {
        // The session is over, unless another tab has meanwhile stored a newer one.
        const now = (await this.storage.get()) ?? null;
        if (!now || (now.accessToken === current?.accessToken && now.refreshToken === current?.refreshToken)) {
          await this.forget();
        }
      }
      throw e;
    }
  }

  /** A sign-in's answer: a session (stored) or the second step's challenge (nothing stored). */
  private async signIn(response: TokenResponse | MfaRequiredBody): Promise<LoginResult> {
    if ("mfa_required" in response && response.mfa_required === true) {
      return { kind: "mfa_required", mfaToken: response.mfa_token, methods: response.methods, expiresIn: response.expires_in };
    }
    return { kind: "session", ...(await this.startSession(response as TokenResponse)) };
  }

  private async startSession(response: TokenResponse): Promise<TokenResponse> {
    await this.inflight?.catch(() => undefined); // don't let an older refresh overwrite the new session
    await this.store(response);
    return response;
  }

  private async store(response: TokenResponse): Promise<Tokens> {
    const tokens: Tokens = {
      accessToken: response.access_token,
      expiresAt: nowSecs() + response.expires_in,
      expiresIn: response.expires_in,
      user: response.user,
    };
    // In cookie mode the refresh token is never kept by script, even if a server sends it.
    if (this.mode === "body" && response.refresh_token) tokens.refreshToken = response.refresh_token;
    await this.storage.set(tokens);
    this.onChange?.(tokens);
    return tokens;
  }

  private async forget(): Promise<void> {
    await this.storage.clear();
    this.onChange?.(null);
  }

  private canRefresh(tokens: Tokens | null): boolean {
    return this.mode === "cookie" || Boolean(tokens?.refreshToken);
  }

  /** [expiry, lifetime] from what the server told us, else from the token's claims. */
  private expiry(tokens: Tokens): [number | undefined, number | undefined] {
    if (typeof tokens.expiresAt === "number") return [tokens.expiresAt, tokens.expiresIn];
    const claims = decodeJwtPayload(tokens.accessToken);
    const exp = typeof claims?.exp === "number" ? claims.exp : undefined;
    const iat = typeof claims?.iat === "number" ? claims.iat : undefined;
    return [exp, exp !== undefined && iat !== undefined ? exp - iat : undefined];
  }

  private expiresSoon(tokens: Tokens): boolean {
    const [exp, lifetime] = this.expiry(tokens);
    if (exp === undefined) return false; // unknown: rely on the 401 path
    const leeway = lifetime === undefined ? this.leewaySecs : Math.min(this.leewaySecs, lifetime / 2);
    return nowSecs() >= exp - leeway;
  }

  private expired(tokens: Tokens): boolean {
    const [exp] = this.expiry(tokens);
    return exp !== undefined && nowSecs() >= exp;
  }

  private url(path: string): string {
    return /^[a-z][a-z0-9+.-]*:/i.test(path) ? path : this.baseUrl + (path.startsWith("/") ? path : `/${path}`);
  }

  private authHeaders(): Record<string, string> {
    return this.mode === "cookie" ? { ...JSON_HEADERS, [CSRF_HEADER]: "1" } : { ...JSON_HEADERS };
  }

  private send(input: RequestInfo | URL, init: RequestInit, tokens: Tokens | null): Promise<Response> {
    const isRequest = typeof Request !== "undefined" && input instanceof Request;
    const headers = new Headers(init.headers ?? (isRequest ? input.headers : undefined));
    if (tokens) headers.set("Authorization", `Bearer ${tokens.accessToken}`);
    if (isRequest) return this.fetchImpl(new Request(input.clone(), { ...init, headers })); // clone: may be sent twice
    return this.fetchImpl(this.url(String(input)), { ...init, headers });
  }

  /** POST to a tollgate auth endpoint; the JSON answer, or an AuthError. */
  private async authCall<T = void>(path: string, body?: object, bearer?: string): Promise<T> {
    const headers = this.authHeaders();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const init: RequestInit = { method: "POST", headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    // Cookie mode: let the browser send and accept the HttpOnly refresh cookie cross-origin.
    if (this.mode === "cookie") init.credentials = "include";
    const response = await this.guard(() => this.fetchImpl(this.url(path), init));
    if (!response.ok) throw await AuthError.fromResponse(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** A tollgate endpoint with the bearer token (refreshed as needed); an AuthError unless 2xx. */
  private async bearerCall(path: string, init: RequestInit): Promise<Response> {
    // In cookie mode the refresh cookie is not needed here (unless init says so): don't send it.
    const credentials = this.mode === "cookie" ? "omit" : "same-origin";
    const response = await this.guard(() => this.fetch(path, { credentials, ...init }));
    if (!response.ok) throw await AuthError.fromResponse(response);
    return response;
  }

  /** A bearer call with a JSON body: the JSON answer, or undefined for 204. */
  private async bearerJson(path: string, method: string, body: object): Promise<unknown> {
    const response = await this.bearerCall(path, { method, headers: this.authHeaders(), body: JSON.stringify(body) });
    return response.status === 204 ? undefined : response.json();
  }

  /** Turns "no answer at all" into an AuthError too, so callers handle one error type. */
  private async guard(request: () => Promise<Response>): Promise<Response> {
    try {
      return await request();
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw new AuthError("The server could not be reached", "network_error", 0, { cause: e });
    }
  }
}

/** The wire form of the second step's challenge (`LoginResult`'s `mfa_required` in camelCase). */
interface MfaRequiredBody {
  mfa_required: true;
  mfa_token: string;
  methods: string[];
  expires_in: number;
}

interface RecoveryCodesBody {
  recovery_codes: string[];
}

/**
 * 401s of tollgate's bearer endpoints that are about what the user typed, not the access
 * token: a wrong current password (/auth/password, /auth/email, TOTP setup) or a wrong code
 * (the /auth/mfa/* calls). A refresh would not help, and a retry would count the wrong code
 * twice toward the login lockout.
 */
const USER_INPUT_REJECTIONS: readonly unknown[] = ["invalid_credentials", "invalid_mfa_code"];

/** Whether a 401 is about the access token (worth a refresh) rather than about what the user typed. */
async function isTokenRejection(response: Response): Promise<boolean> {
  try {
    const body = (await response.clone().json()) as { code?: unknown };
    return !USER_INPUT_REJECTIONS.includes(body?.code);
  } catch {
    return true;
  }
}
