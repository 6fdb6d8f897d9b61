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
// Errors
/** Every failure of the client's auth calls: the server's `{error, code}` plus the HTTP status. */
export class AuthError extends Error {
    /** The server's human-readable message (also `message`): show it to the user. */
    error;
    /** The server's snake_case code, e.g. `invalid_credentials`; `network_error` when no answer came. */
    code;
    /** HTTP status; 0 when the request never got an answer. */
    status;
    /** Seconds from `Retry-After` (429, 503), when the server sent it. */
    retryAfter;
    constructor(error, code, status, options) {
        super(error, options?.cause === undefined ? undefined : { cause: options.cause });
        this.name = "AuthError";
        this.error = error;
        this.code = code;
        this.status = status;
        this.retryAfter = options?.retryAfter;
    }
    /** Builds the error from a failed response, whatever its body turns out to be. */
    static async fromResponse(response) {
        const retry = Number(response.headers.get("retry-after"));
        const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
        let body = null;
        try {
            body = await response.json();
        }
        catch {
            // Not JSON (a proxy's HTML page, an empty body): fall back to the status line.
        }
        const b = body;
        const error = typeof b?.error === "string" ? b.error : `HTTP ${response.status} ${response.statusText}`.trim();
        const code = typeof b?.code === "string" ? b.code : "http_error";
        return new AuthError(error, code, response.status, { retryAfter });
    }
}
/** The default: tokens live as long as the page / process. Nothing for XSS to find on disk. */
export class MemoryStorage {
    tokens = null;
    get() {
        return this.tokens;
    }
    set(tokens) {
        this.tokens = tokens;
    }
    clear() {
        this.tokens = null;
    }
}
/**
 * Tokens in `localStorage`, shared by every tab of the origin (as the old Django front end
 * kept its state). Any script on the page can read them: prefer cookie mode in browsers.
 */
export class LocalStorageStorage {
    key;
    store;
    constructor(key = "tollgate.tokens", store) {
        const found = store ?? globalThis.localStorage;
        if (!found)
            throw new Error("LocalStorageStorage: no localStorage here; pass a storage object");
        this.key = key;
        this.store = found;
    }
    get() {
        const raw = this.store.getItem(this.key);
        if (!raw)
            return null;
        try {
            const parsed = JSON.parse(raw);
            return typeof parsed?.accessToken === "string" ? parsed : null;
        }
        catch {
            return null; // a corrupt entry means "logged out", not a crash on every call
        }
    }
    set(tokens) {
        this.store.setItem(this.key, JSON.stringify(tokens));
    }
    clear() {
        this.store.removeItem(this.key);
    }
}
/** No cross-tab coordination (Node, React Native: one process, the in-memory single flight suffices). */
export const noLock = (_name, task) => task(false);
/** The Web Locks API (every current browser): exact, and released when a tab dies. */
export function webLocks() {
    const locks = globalThis.navigator?.locks;
    if (!locks || typeof locks.request !== "function")
        return null;
    return async (name, task) => {
        // Free: take it at once. Held by another tab: queue for it, and say so to the task.
        const now = await locks.request(name, { ifAvailable: true }, async (lock) => lock ? { value: await task(false) } : null);
        return now ? now.value : locks.request(name, () => task(true));
    };
}
/**
 * A best-effort lock over BroadcastChannel for browsers without Web Locks. A tab asks;
 * the holder answers "busy" and later says "done"; two tabs asking at once defer to the
 * smaller id. Should it still race (a tab frozen mid-handshake), tollgate's refresh grace
 * window gives both tabs the same successor token, so nobody is logged out.
 */
export function broadcastChannelLock(waitMs = 50, maxHoldMs = 15_000) {
    if (typeof BroadcastChannel !== "function")
        return null;
    return async (name, task) => {
        const channel = new BroadcastChannel(name);
        // Time first, so that ids order tabs roughly first come, first served.
        const id = `${Date.now().toString(36).padStart(10, "0")}-${Math.random().toString(36).slice(2)}`;
        let holding = false;
        let contended = false;
        let wake = null;
        channel.onmessage = (event) => {
            const message = event.data;
            // Whoever holds the lock, or asked before a newcomer (smaller id), tells the newcomer to
            // wait: a tab that opened its channel after our "ask" never saw it.
            if (message.t === "ask" && (holding || message.id > id))
                channel.postMessage({ t: "busy", id });
            else
                wake?.(message);
        };
        try {
            // Contend until a round passes in which nobody holds the lock or outranks us.
            for (;;) {
                const blocker = await new Promise((resolve) => {
                    const timer = setTimeout(() => resolve(null), waitMs);
                    wake = (m) => {
                        if (m.t === "busy" || (m.t === "ask" && m.id < id)) {
                            clearTimeout(timer);
                            resolve(m.id);
                        }
                    };
                    channel.postMessage({ t: "ask", id });
                });
                if (blocker === null)
                    break;
                contended = true;
                // Wait for the other tab's "done" (or give up on it if it died holding the lock).
                await new Promise((resolve) => {
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
        }
        finally {
            wake = null;
            if (holding)
                channel.postMessage({ t: "done", id });
            channel.close();
        }
    };
}
/** Web Locks where there are any, else BroadcastChannel in a browser page, else none. */
function defaultLock() {
    const inBrowserPage = typeof globalThis.document !== "undefined";
    return webLocks() ?? (inBrowserPage ? broadcastChannelLock() : null) ?? noLock;
}
// ---------------------------------------------------------------------------
// JWT payload decoding (only to read `exp`; the client never needs to trust it)
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** The claims of a JWT, unverified; null if it is not one. No atob/TextDecoder needed (React Native). */
export function decodeJwtPayload(token) {
    const part = token.split(".")[1];
    if (!part)
        return null;
    let value = 0;
    let bits = 0;
    let percentEncoded = "";
    for (const ch of part.replace(/=+$/, "")) {
        const digit = BASE64URL.indexOf(ch);
        if (digit < 0)
            return null;
        value = ((value << 6) | digit) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            percentEncoded += "%" + ((value >> bits) & 0xff).toString(16).padStart(2, "0");
        }
    }
    try {
        const claims = JSON.parse(decodeURIComponent(percentEncoded));
        return claims !== null && typeof claims === "object" ? claims : null;
    }
    catch {
        return null;
    }
}
const CSRF_HEADER = "X-Tollgate-CSRF";
const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };
const nowSecs = () => Date.now() / 1000;
export class TollgateClient {
    baseUrl;
    mode;
    storage;
    fetchImpl;
    leewaySecs;
    lock;
    onChange;
    /** The refresh in flight in this tab/process, which every concurrent caller awaits. */
    inflight = null;
    constructor(options) {
        this.baseUrl = options.baseUrl.replace(/\/+$/, "");
        this.mode = options.mode ?? "body";
        this.storage = options.storage ?? new MemoryStorage();
        const globalFetch = globalThis.fetch;
        const chosen = options.fetch ?? globalFetch?.bind(globalThis); // unbound window.fetch throws "Illegal invocation"
        if (!chosen)
            throw new Error("TollgateClient: no fetch available; pass options.fetch");
        this.fetchImpl = chosen;
        this.leewaySecs = options.refreshLeewaySecs ?? 30;
        this.lock = options.lock ?? defaultLock();
        this.onChange = options.onChange;
    }
    // -- account calls ---------------------------------------------------------
    /** POST /auth/signup; stores the new session. */
    async signup(input) {
        const body = { username: input.username, password: input.password };
        if (input.email)
            body.email = input.email;
        return this.startSession(await this.authCall("/auth/signup", body));
    }
    /**
     * POST /auth/login. Resolves with `{ kind: "session", ...tokenResponse }`, stored (with
     * SESSIONS_PER_USER=1 the server ends the user's previous session), or, for an account
     * with a second factor, `{ kind: "mfa_required", mfaToken, methods, expiresIn }` and
     * nothing stored: ask for a code and call `completeMfaLogin(mfaToken, code)`.
     * A wrong password throws AuthError 401 `invalid_credentials` as before.
     */
    async login(input) {
        const body = { username: input.username, password: input.password };
        return this.signIn(await this.authCall("/auth/login", body));
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
    async completeMfaLogin(mfaToken, code) {
        const response = await this.authCall("/auth/login/mfa", { mfa_token: mfaToken, code });
        return { kind: "session", ...(await this.startSession(response)) };
    }
    /**
     * Ends the session on the server (revoking the refresh token) and forgets the tokens.
     * Local state is cleared even if the server cannot be reached; that error is still thrown.
     * `scope: "others"` ends the user's other sessions and keeps this one (and its tokens);
     * `"global"` ends all of them.
     */
    async logout(options = {}) {
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
            }
            else if (this.mode === "cookie") {
                await this.authCall("/auth/logout", scoped); // the cookie identifies the session; the server clears it
            }
            else if (tokens?.refreshToken) {
                // By refresh token: works even when the access token has already expired.
                await this.authCall("/auth/logout", { refresh_token: tokens.refreshToken, ...scoped });
            }
            else if (tokens) {
                await this.authCall("/auth/logout", scoped, tokens.accessToken);
            }
        }
        catch (e) {
            // 401: this session was already over (expired, revoked, logged out elsewhere), which is all
            // "local" asked for. For the other scopes it means the other sessions were not ended.
            if (!(scope === "local" && e instanceof AuthError && e.status === 401))
                throw e;
        }
        finally {
            if (scope !== "others")
                await this.forget();
        }
    }
    /** GET /auth/sessions: the user's sessions, most recently used first. */
    async sessions() {
        const response = await this.bearerCall("/auth/sessions", { headers: { Accept: "application/json" } });
        return (await response.json()).sessions;
    }
    /**
     * DELETE /auth/sessions/{id}: signs that device out at once (its refresh and access tokens
     * stop working). For this client's own session it is `logout()`, which also forgets the tokens.
     */
    async endSession(id) {
        const tokens = await this.storage.get();
        if (tokens && decodeJwtPayload(tokens.accessToken)?.sid === id)
            return this.logout();
        await this.bearerCall(`/auth/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
    }
    /** GET /auth/me with the bearer token, refreshing if needed. */
    async me() {
        const response = await this.bearerCall("/auth/me", { headers: { Accept: "application/json" } });
        return (await response.json());
    }
    /** POST /auth/password; the server starts a new session, which is stored. */
    async changePassword(currentPassword, newPassword) {
        const response = await this.bearerCall("/auth/password", {
            method: "POST",
            headers: this.authHeaders(),
            credentials: this.mode === "cookie" ? "include" : "same-origin", // the new session's cookie
            body: JSON.stringify({ current_password: currentPassword, new_password: newPassword }),
        });
        return this.startSession((await response.json()));
    }
    // -- mail: password reset, email verification and change ------------------
    // A server without SMTP_URL answers all of these with 404 `not_found`.
    /**
     * POST /auth/password/forgot: asks for a reset mail. Resolves (202) whether or not an
     * account has the address, so the answer tells nothing about who is registered; every
     * enabled account with it gets a mail with a link `…/auth/password/reset?token=…`, at most
     * one per account per MAIL_COOLDOWN_SECS. 429 `rate_limited` (with `retryAfter`) as for logins.
     */
    async forgotPassword(email) {
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
    async resetPassword(token, newPassword) {
        const body = { token, new_password: newPassword };
        return this.signIn(await this.authCall("/auth/password/reset", body));
    }
    // -- second factor: TOTP and recovery codes --------------------------------
    /**
     * POST /auth/mfa/totp/setup (bearer): a new TOTP secret, not active until
     * `confirmTotp()`. Show `otpauth_uri` as a QR code and `secret` as text. A new setup
     * before confirming replaces the pending secret. With a factor already on, `code` (a code
     * of it) is needed too. 401 `invalid_credentials` for a wrong password, `invalid_mfa_code`
     * for a missing or wrong code (the session goes on either way).
     */
    async setupTotp(currentPassword, code) {
        const body = { current_password: currentPassword };
        if (code !== undefined)
            body.code = code;
        return (await this.bearerJson("/auth/mfa/totp/setup", "POST", body));
    }
    /**
     * POST /auth/mfa/totp/confirm (bearer) with a code of the secret just set up: the factor
     * is on, and these are its ten recovery codes, each good for one sign-in. Show them once;
     * the server keeps only their hashes. 401 `invalid_mfa_code` otherwise.
     */
    async confirmTotp(code) {
        return (await this.bearerJson("/auth/mfa/totp/confirm", "POST", { code })).recovery_codes;
    }
    /** DELETE /auth/mfa/totp (bearer) with a TOTP or recovery code: the factor and its recovery codes are gone. */
    async disableTotp(code) {
        await this.bearerJson("/auth/mfa/totp", "DELETE", { code });
    }
    /** POST /auth/mfa/recovery-codes (bearer) with a TOTP or recovery code: a new set of ten; the old set stops working. */
    async newRecoveryCodes(code) {
        return (await this.bearerJson("/auth/mfa/recovery-codes", "POST", { code })).recovery_codes;
    }
    /**
     * POST /auth/email/verify with the token from a verification mail (after signup with an
     * email, `resendVerificationEmail()` or `changeEmail()`): the user object, now with
     * `email_verified: true` (and, after a change, the new address). Needs no login, as the link
     * may be opened on another device. Single use: 401 `invalid_verification_token` otherwise.
     * The stored `getTokens().user` is not updated until the next login or refresh; `me()` is.
     */
    async verifyEmail(token) {
        return this.authCall("/auth/email/verify", { token });
    }
    /** POST /auth/email/verify/resend (bearer): mails a new verification link to the user's address. */
    async resendVerificationEmail() {
        const response = await this.bearerCall("/auth/email/verify/resend", { method: "POST", headers: this.authHeaders() });
        await response.text(); // `{}`
    }
    /**
     * POST /auth/email (bearer): asks to change the address to `email`. A verification mail
     * goes to the new address and a notice to the old one; the address changes (verified) only
     * when the new address's link is used (`verifyEmail`). Until then `me()` shows the old one.
     * A wrong password is 401 `invalid_credentials` (the session goes on).
     */
    async changeEmail(email, currentPassword) {
        const response = await this.bearerCall("/auth/email", {
            method: "POST",
            headers: this.authHeaders(),
            body: JSON.stringify({ email, current_password: currentPassword }),
        });
        await response.text(); // `{}`
    }
    /** The stored tokens, or null when logged out. */
    async getTokens() {
        return (await this.storage.get()) ?? null;
    }
    /**
     * Trades the refresh token for a new pair now. Concurrent callers (in this tab and, via
     * the lock, in other tabs) share one request. Throws AuthError; a 401 means the session
     * is over and the stored tokens are forgotten.
     */
    refresh() {
        return this.singleFlight(undefined);
    }
    // -- authorised requests ---------------------------------------------------
    /**
     * `fetch` with `Authorization: Bearer <access token>`. Refreshes first when the token
     * is about to expire, and once more (then retries once) if the answer is a 401 about the
     * token. Relative URLs are resolved against `baseUrl`. Resolves with the Response like
     * `fetch` does; throws AuthError only when the session cannot be renewed.
     */
    async fetch(input, init = {}) {
        let tokens = (await this.storage.get()) ?? null;
        if (tokens && this.expiresSoon(tokens) && this.canRefresh(tokens)) {
            try {
                tokens = await this.singleFlight(tokens.accessToken);
            }
            catch (e) {
                // A failed early refresh is harmless while the current token still works (a network blip).
                if ((e instanceof AuthError && e.status === 401) || this.expired(tokens))
                    throw e;
            }
        }
        const first = await this.send(input, init, tokens);
        if (first.status !== 401 || !this.canRefresh(tokens) || !(await isTokenRejection(first)))
            return first;
        const renewed = await this.singleFlight(tokens?.accessToken ?? null);
        return this.send(input, init, renewed);
    }
    // -- internals -------------------------------------------------------------
    /**
     * One refresh for everyone: concurrent callers in this tab share `inflight`; other tabs are
     * kept out by the cross-tab lock. `stale` is the access token the caller found wanting
     * (null: it had none; undefined: refresh regardless).
     */
    singleFlight(stale) {
        this.inflight ??= this.lock(`tollgate-refresh ${this.baseUrl}`, (contended) => this.refreshLocked(stale, contended)).finally(() => {
            this.inflight = null;
        });
        return this.inflight;
    }
    async refreshLocked(stale, contended) {
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
        let body;
        if (this.mode === "body") {
            if (!current?.refreshToken)
                throw new AuthError("Not logged in", "not_logged_in", 401);
            body = { refresh_token: current.refreshToken };
        }
        else {
            body = {}; // the HttpOnly cookie carries the token
        }
        try {
            return await this.store(await this.authCall("/auth/refresh", body));
        }
        catch (caught) {
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
    async signIn(response) {
        if ("mfa_required" in response && response.mfa_required === true) {
            return { kind: "mfa_required", mfaToken: response.mfa_token, methods: response.methods, expiresIn: response.expires_in };
        }
        return { kind: "session", ...(await this.startSession(response)) };
    }
    async startSession(response) {
        await this.inflight?.catch(() => undefined); // don't let an older refresh overwrite the new session
        await this.store(response);
        return response;
    }
    async store(response) {
        const tokens = {
            accessToken: response.access_token,
            expiresAt: nowSecs() + response.expires_in,
            expiresIn: response.expires_in,
            user: response.user,
        };
        // In cookie mode the refresh token is never kept by script, even if a server sends it.
        if (this.mode === "body" && response.refresh_token)
            tokens.refreshToken = response.refresh_token;
        await this.storage.set(tokens);
        this.onChange?.(tokens);
        return tokens;
    }
    async forget() {
        await this.storage.clear();
        this.onChange?.(null);
    }
    canRefresh(tokens) {
        return this.mode === "cookie" || Boolean(tokens?.refreshToken);
    }
    /** [expiry, lifetime] from what the server told us, else from the token's claims. */
    expiry(tokens) {
        if (typeof tokens.expiresAt === "number")
            return [tokens.expiresAt, tokens.expiresIn];
        const claims = decodeJwtPayload(tokens.accessToken);
        const exp = typeof claims?.exp === "number" ? claims.exp : undefined;
        const iat = typeof claims?.iat === "number" ? claims.iat : undefined;
        return [exp, exp !== undefined && iat !== undefined ? exp - iat : undefined];
    }
    expiresSoon(tokens) {
        const [exp, lifetime] = this.expiry(tokens);
        if (exp === undefined)
            return false; // unknown: rely on the 401 path
        const leeway = lifetime === undefined ? this.leewaySecs : Math.min(this.leewaySecs, lifetime / 2);
        return nowSecs() >= exp - leeway;
    }
    expired(tokens) {
        const [exp] = this.expiry(tokens);
        return exp !== undefined && nowSecs() >= exp;
    }
    url(path) {
        return /^[a-z][a-z0-9+.-]*:/i.test(path) ? path : this.baseUrl + (path.startsWith("/") ? path : `/${path}`);
    }
    authHeaders() {
        return this.mode === "cookie" ? { ...JSON_HEADERS, [CSRF_HEADER]: "1" } : { ...JSON_HEADERS };
    }
    send(input, init, tokens) {
        const isRequest = typeof Request !== "undefined" && input instanceof Request;
        const headers = new Headers(init.headers ?? (isRequest ? input.headers : undefined));
        if (tokens)
            headers.set("Authorization", `Bearer ${tokens.accessToken}`);
        if (isRequest)
            return this.fetchImpl(new Request(input.clone(), { ...init, headers })); // clone: may be sent twice
        return this.fetchImpl(this.url(String(input)), { ...init, headers });
    }
    /** POST to a tollgate auth endpoint; the JSON answer, or an AuthError. */
    async authCall(path, body, bearer) {
        const headers = this.authHeaders();
        if (bearer)
            headers.Authorization = `Bearer ${bearer}`;
        const init = { method: "POST", headers };
        if (body !== undefined)
            init.body = JSON.stringify(body);
        // Cookie mode: let the browser send and accept the HttpOnly refresh cookie cross-origin.
        if (this.mode === "cookie")
            init.credentials = "include";
        const response = await this.guard(() => this.fetchImpl(this.url(path), init));
        if (!response.ok)
            throw await AuthError.fromResponse(response);
        if (response.status === 204)
            return undefined;
        return (await response.json());
    }
    /** A tollgate endpoint with the bearer token (refreshed as needed); an AuthError unless 2xx. */
    async bearerCall(path, init) {
        // In cookie mode the refresh cookie is not needed here (unless init says so): don't send it.
        const credentials = this.mode === "cookie" ? "omit" : "same-origin";
        const response = await this.guard(() => this.fetch(path, { credentials, ...init }));
        if (!response.ok)
            throw await AuthError.fromResponse(response);
        return response;
    }
    /** A bearer call with a JSON body: the JSON answer, or undefined for 204. */
    async bearerJson(path, method, body) {
        const response = await this.bearerCall(path, { method, headers: this.authHeaders(), body: JSON.stringify(body) });
        return response.status === 204 ? undefined : response.json();
    }
    /** Turns "no answer at all" into an AuthError too, so callers handle one error type. */
    async guard(request) {
        try {
            return await request();
        }
        catch (e) {
            if (e instanceof AuthError)
                throw e;
            throw new AuthError("The server could not be reached", "network_error", 0, { cause: e });
        }
    }
}
/**
 * 401s of tollgate's bearer endpoints that are about what the user typed, not the access
 * token: a wrong current password (/auth/password, /auth/email, TOTP setup) or a wrong code
 * (the /auth/mfa/* calls). A refresh would not help, and a retry would count the wrong code
 * twice toward the login lockout.
 */
const USER_INPUT_REJECTIONS = ["invalid_credentials", "invalid_mfa_code"];
/** Whether a 401 is about the access token (worth a refresh) rather than about what the user typed. */
async function isTokenRejection(response) {
    try {
        const body = (await response.clone().json());
        return !USER_INPUT_REJECTIONS.includes(body?.code);
    }
    catch {
        return true;
    }
}
