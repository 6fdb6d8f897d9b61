// Cookie mode (REFRESH_TOKEN_COOKIE=true) against a real tollgate, without a browser: the
// protocol itself, and the client in cookie mode over a fetch that behaves like a browser's
// (sends Origin, keeps cookies, sends them only with credentials: "include").
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError, TollgateClient, type Tokens } from "tollgate-client";
import { PASSWORD, browserFetch, recordingFetch, sleep, startTollgate, supportsCookieMode, uniqueName, type Tollgate } from "./server.js";

const APP_ORIGIN = "http://app.example.test";
const EVIL_ORIGIN = "http://evil.example.test";

let server: Tollgate;
let cookieMode = false;
before(async () => {
  server = await startTollgate({ REFRESH_TOKEN_COOKIE: "true", CORS_ALLOWED_ORIGINS: APP_ORIGIN, JWT_LEEWAY_SECS: "1" });
  cookieMode = await supportsCookieMode(server, APP_ORIGIN);
  if (!cookieMode) console.log("# SKIP: this tollgate has no cookie mode (REFRESH_TOKEN_COOKIE) yet");
});
after(async () => {
  await server?.stop();
});

/** The Set-Cookie for tollgate_refresh, parsed into value and attributes. */
function refreshCookie(response: Response) {
  const line = response.headers.getSetCookie().find((c) => c.startsWith("tollgate_refresh="));
  if (!line) return null;
  const [pair, ...attributes] = line.split(/;\s*/);
  return {
    value: pair!.slice("tollgate_refresh=".length),
    attributes: attributes.map((a) => a.toLowerCase()),
    line,
  };
}

function post(path: string, headers: Record<string, string>, body?: unknown) {
  return fetch(`${server.url}${path}`, {
    method: "POST",
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Signs up as a browser would; returns the cookie value. */
async function browserSignup(): Promise<string> {
  const response = await post("/auth/signup", { origin: APP_ORIGIN }, { username: uniqueName("c"), password: PASSWORD });
  assert.equal(response.status, 201);
  const cookie = refreshCookie(response);
  assert.ok(cookie, "signup set the refresh cookie");
  return cookie.value;
}

describe("cookie mode: the protocol", () => {
  test("a browser signup gets the refresh token only as an HttpOnly; Secure; SameSite=Strict; Path=/auth cookie", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const response = await post("/auth/signup", { origin: APP_ORIGIN }, { username: uniqueName("c"), password: PASSWORD });
    assert.equal(response.status, 201);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal("refresh_token" in body, false);
    assert.ok(typeof body.access_token === "string");
    const cookie = refreshCookie(response);
    assert.ok(cookie, "Set-Cookie: tollgate_refresh");
    assert.ok(cookie.value.length > 40);
    for (const attribute of ["httponly", "secure", "samesite=strict", "path=/auth"]) {
      assert.ok(cookie.attributes.includes(attribute), `${attribute} in ${cookie.line}`);
    }
  });

  test("a native app (no Origin) keeps getting the refresh token in JSON and no cookie", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const rec = recordingFetch();
    const app = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch });
    const response = await app.signup({ username: uniqueName("n"), password: PASSWORD });
    assert.ok(response.refresh_token);
    const tokens = (await app.getTokens())!;
    const refreshed = await app.refresh();
    assert.ok(refreshed.refreshToken);
    assert.notEqual(refreshed.refreshToken, tokens.refreshToken);
    await app.logout();
  });

  test("the cookie is refused without the CSRF header, from another origin, or without Origin", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const cookie = `tollgate_refresh=${await browserSignup()}`;
    const attempts: [string, Record<string, string>][] = [
      ["allowed origin, no CSRF header", { origin: APP_ORIGIN, cookie }],
      ["other origin with the CSRF header", { origin: EVIL_ORIGIN, cookie, "x-tollgate-csrf": "1" }],
      ["no Origin with the CSRF header", { cookie, "x-tollgate-csrf": "1" }],
      ["allowed origin, wrong CSRF value", { origin: APP_ORIGIN, cookie, "x-tollgate-csrf": "0" }],
    ];
    for (const [what, headers] of attempts) {
      for (const path of ["/auth/refresh", "/auth/logout"]) {
        const response = await post(path, headers, {});
        assert.equal(response.status, 403, `${what}: ${path}`);
        const body = (await response.json()) as { code: string; error: string };
        assert.equal(body.code, "csrf_rejected", `${what}: ${path}`);
        assert.ok(body.error.length > 0);
      }
    }
    // None of that touched the session: the legitimate request still works.
    const ok = await post("/auth/refresh", { origin: APP_ORIGIN, cookie, "x-tollgate-csrf": "1" }, {});
    assert.equal(ok.status, 200);
  });

  test("refresh with the cookie rotates it and keeps the token out of JSON; logout clears it", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const first = await browserSignup();
    const headers = (value: string) => ({ origin: APP_ORIGIN, cookie: `tollgate_refresh=${value}`, "x-tollgate-csrf": "1" });
    const refreshed = await post("/auth/refresh", headers(first), {});
    assert.equal(refreshed.status, 200);
    const body = (await refreshed.json()) as Record<string, unknown>;
    assert.equal("refresh_token" in body, false);
    const second = refreshCookie(refreshed);
    assert.ok(second && second.value !== first, "a new cookie");
    // Without a body at all, too.
    const third = refreshCookie(await post("/auth/refresh", headers(second.value)));
    assert.ok(third, "refresh without a body");
    const logout = await post("/auth/logout", headers(third.value));
    assert.equal(logout.status, 204);
    const cleared = refreshCookie(logout);
    assert.ok(cleared && (cleared.value === "" || cleared.attributes.includes("max-age=0")), `cleared: ${cleared?.line}`);
    assert.equal((await post("/auth/refresh", headers(third.value), {})).status, 401);
  });

  test("CORS: the allowed origin may send credentials and the CSRF header; others get no CORS grant", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const preflight = (origin: string) =>
      fetch(`${server.url}/auth/refresh`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,x-tollgate-csrf",
        },
      });
    const allowed = await preflight(APP_ORIGIN);
    assert.equal(allowed.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.equal(allowed.headers.get("access-control-allow-credentials"), "true");
    assert.match(allowed.headers.get("access-control-allow-headers") ?? "", /x-tollgate-csrf/i);
    const evil = await preflight(EVIL_ORIGIN);
    assert.equal(evil.headers.get("access-control-allow-origin"), null);
  });
});

describe("cookie mode: the client", () => {
  test("signup, me, 50 parallel calls after expiry with one refresh, password change, logout", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const browser = browserFetch(APP_ORIGIN);
    const rec = recordingFetch(browser.fetch as typeof fetch);
    const changes: (Tokens | null)[] = [];
    const client = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch, mode: "cookie", onChange: (t) => changes.push(t) });
    const username = uniqueName("cm");
    const response = await client.signup({ username, password: PASSWORD });
    assert.equal(response.refresh_token, undefined);
    const stored = (await client.getTokens())!;
    assert.equal(stored.refreshToken, undefined, "script never holds the refresh token");
    assert.ok(browser.jar.has("tollgate_refresh"), "the browser holds it");
    assert.equal((await client.me()).username, username);

    // Let the access token expire, then 50 calls at once.
    await sleep(Math.max(0, (stored.expiresAt! - Date.now() / 1000) * 1000) + 100);
    rec.reset();
    const cookieBefore = browser.jar.get("tollgate_refresh");
    const results = await Promise.all(Array.from({ length: 50 }, () => client.fetch("/auth/me")));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(rec.count("/auth/refresh"), 1);
    assert.notEqual(browser.jar.get("tollgate_refresh"), cookieBefore, "the cookie was rotated");
    assert.equal((await client.getTokens())?.refreshToken, undefined);

    // Password change: new session, new cookie, still nothing in JSON.
    const cookieBeforeChange = browser.jar.get("tollgate_refresh");
    const changed = await client.changePassword(PASSWORD, "a cookie mode passphrase");
    assert.equal(changed.refresh_token, undefined);
    assert.notEqual(browser.jar.get("tollgate_refresh"), cookieBeforeChange);
    await client.refresh();

    await client.logout();
    assert.equal(browser.jar.has("tollgate_refresh"), false, "logout cleared the cookie");
    assert.equal(await client.getTokens(), null);
    assert.equal(changes.at(-1), null);
    await assert.rejects(client.refresh(), (e: unknown) => e instanceof AuthError && e.status === 401);
  });

  test("a new tab (no access token yet) restores the session from the cookie", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const browser = browserFetch(APP_ORIGIN);
    const first = new TollgateClient({ baseUrl: server.url, fetch: browser.fetch, mode: "cookie" });
    const username = uniqueName("tab");
    await first.signup({ username, password: PASSWORD });
    // Same browser (cookie jar), new page: its memory storage is empty.
    const second = new TollgateClient({ baseUrl: server.url, fetch: browser.fetch, mode: "cookie" });
    assert.equal(await second.getTokens(), null);
    const tokens = await second.refresh();
    assert.equal(tokens.user?.username, username);
    assert.equal((await second.me()).username, username);
  });

  test("without a cookie, refresh() and fetch() throw a 401 AuthError (the app shows its login)", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const client = new TollgateClient({ baseUrl: server.url, fetch: browserFetch(APP_ORIGIN).fetch, mode: "cookie" });
    await assert.rejects(client.refresh(), (e: unknown) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.status, 401);
      return true;
    });
    await assert.rejects(client.fetch("/auth/me"), { name: "AuthError", status: 401 });
  });

  test("a client on another origin is refused with csrf_rejected", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const cookie = await browserSignup();
    const evil = browserFetch(EVIL_ORIGIN);
    evil.jar.set("tollgate_refresh", cookie);
    const client = new TollgateClient({ baseUrl: server.url, fetch: evil.fetch, mode: "cookie" });
    await assert.rejects(client.refresh(), { name: "AuthError", status: 403, code: "csrf_rejected" });
  });
});
