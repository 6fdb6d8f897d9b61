// The client against a real tollgate (ACCESS_TOKEN_TTL_SECS=2, JWT_LEEWAY_SECS=0), body mode.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AuthError,
  LocalStorageStorage,
  MemoryStorage,
  TollgateClient,
  broadcastChannelLock,
  decodeJwtPayload,
  type TokenStorage,
  type Tokens,
  type WebStorageLike,
} from "tollgate-client";
import { PASSWORD, asSession, freePort, recordingFetch, sleep, startTollgate, uniqueName, type Tollgate } from "./server.js";

let server: Tollgate;
before(async () => {
  // A 1 s leeway: with 0, tollgate refuses the token of a password change for up to a second
  // (its iat is the next second, "in the future"); see the issue note.
  server = await startTollgate({ JWT_LEEWAY_SECS: "1" });
});
after(async () => {
  await server?.stop();
});

/** A client with a request recorder, and a signed-up user. */
async function loggedIn(options: { storage?: TokenStorage; refreshLeewaySecs?: number } = {}) {
  const rec = recordingFetch();
  const client = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch, ...options });
  const username = uniqueName();
  await client.signup({ username, password: PASSWORD });
  rec.reset();
  return { client, rec, username };
}

/** Waits until the server refuses the client's current access token (TTL 2 s + leeway 1 s). */
async function waitForExpiry(client: TollgateClient) {
  const token = (await client.getTokens())?.accessToken;
  assert.ok(token, "logged in");
  for (let i = 0; i < 100; i++) {
    const response = await fetch(`${server.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
    if (response.status === 401) return;
    await sleep(200);
  }
  assert.fail("the access token never expired");
}

/** Marks the stored access token as having plenty of time left, so no early refresh interferes. */
async function farFromExpiry(client: TollgateClient) {
  const tokens = (await client.getTokens())!;
  await client.storage.set({ ...tokens, expiresAt: Date.now() / 1000 + 3600 });
}

class FakeLocalStorage implements WebStorageLike {
  readonly map = new Map<string, string>();
  getItem(key: string) {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.map.set(key, String(value));
  }
  removeItem(key: string) {
    this.map.delete(key);
  }
}

describe("account calls", () => {
  test("signup stores the session and me() returns the user", async () => {
    const client = new TollgateClient({ baseUrl: server.url });
    const username = uniqueName("Sign");
    const response = await client.signup({ username, password: PASSWORD, email: "Sign@Example.com" });
    assert.equal(response.token_type, "Bearer");
    assert.equal(response.user.username, username.toLowerCase());
    assert.equal(response.user.email, "sign@example.com");
    assert.ok(response.refresh_token, "body mode gets the refresh token in JSON");
    const tokens = await client.getTokens();
    assert.equal(tokens?.accessToken, response.access_token);
    assert.equal(tokens?.refreshToken, response.refresh_token);
    assert.deepEqual(tokens?.user, response.user);
    const me = await client.me();
    assert.deepEqual(me, response.user);
    assert.equal(JSON.stringify(me).includes("password"), false);
  });

  test("login, then me()", async () => {
    const { username } = await loggedIn();
    const client = new TollgateClient({ baseUrl: server.url });
    assert.equal(await client.getTokens(), null);
    const response = asSession(await client.login({ username, password: PASSWORD }));
    assert.equal(response.kind, "session");
    assert.equal(response.user.username, username);
    assert.equal(response.user.mfa_enabled, false);
    assert.equal((await client.me()).id, response.user.id);
  });

  test("logout revokes the refresh token on the server and forgets the tokens", async () => {
    const { client, rec } = await loggedIn();
    const refreshToken = (await client.getTokens())?.refreshToken;
    const changes: (Tokens | null)[] = [];
    const watched = new TollgateClient({ baseUrl: server.url, storage: client.storage, onChange: (t) => changes.push(t) });
    await watched.logout();
    assert.equal(await client.getTokens(), null);
    assert.deepEqual(changes, [null]);
    // The server agrees: the refresh token is dead.
    const refresh = await fetch(`${server.url}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
    assert.equal(refresh.status, 401);
    // Logging out again is harmless; it sends nothing when there is nothing to revoke.
    rec.reset();
    await client.logout();
    assert.equal(rec.calls.length, 0);
  });

  test("logout works after the access token expired (it uses the refresh token)", async () => {
    const { client, rec } = await loggedIn();
    await waitForExpiry(client);
    await client.logout();
    assert.deepEqual(rec.calls, [{ method: "POST", path: "/auth/logout", status: 204 }]);
    assert.equal(await client.getTokens(), null);
  });

  test("changePassword starts a new session; the new password logs in, the old one does not", async () => {
    const { client, username } = await loggedIn();
    const before = await client.getTokens();
    const response = await client.changePassword(PASSWORD, "a brand new passphrase");
    const after = await client.getTokens();
    assert.equal(after?.accessToken, response.access_token);
    assert.notEqual(after?.refreshToken, before?.refreshToken);
    assert.equal((await client.me()).username, username);
    const other = new TollgateClient({ baseUrl: server.url });
    await other.login({ username, password: "a brand new passphrase" });
    await assert.rejects(other.login({ username, password: PASSWORD }), { code: "invalid_credentials", status: 401 });
  });

  test("a wrong current password is an AuthError and costs no refresh", async () => {
    const { client, rec } = await loggedIn();
    const error = await client.changePassword("not the password", "another new password").catch((e: unknown) => e);
    assert.ok(error instanceof AuthError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "invalid_credentials");
    assert.equal(rec.count("/auth/refresh"), 0);
    assert.equal(rec.count("/auth/password"), 1);
  });
});

describe("AuthError carries the server's error, code and status", () => {
  test("wrong password: 401 invalid_credentials", async () => {
    const { username } = await loggedIn();
    const client = new TollgateClient({ baseUrl: server.url });
    const error = await client.login({ username, password: "wrong password!" }).catch((e: unknown) => e);
    assert.ok(error instanceof AuthError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, "AuthError");
    assert.equal(error.status, 401);
    assert.equal(error.code, "invalid_credentials");
    assert.equal(typeof error.error, "string");
    assert.ok(error.error.length > 0);
    assert.equal(error.message, error.error);
    assert.equal(await client.getTokens(), null);
  });

  test("taken username: 409 username_taken; invalid input: 422 validation_failed", async () => {
    const { username } = await loggedIn();
    const client = new TollgateClient({ baseUrl: server.url });
    await assert.rejects(client.signup({ username, password: PASSWORD }), (e: unknown) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.status, 409);
      assert.equal(e.code, "username_taken");
      return true;
    });
    await assert.rejects(client.signup({ username: "x", password: "short" }), (e: unknown) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.status, 422);
      assert.equal(e.code, "validation_failed");
      assert.match(e.error, /\S/);
      return true;
    });
  });

  test("me() without a session: 401 missing_token", async () => {
    const client = new TollgateClient({ baseUrl: server.url });
    await assert.rejects(client.me(), { name: "AuthError", status: 401, code: "missing_token" });
  });

  test("no server: network_error, status 0", async () => {
    const client = new TollgateClient({ baseUrl: `http://127.0.0.1:${await freePort()}` });
    await assert.rejects(client.login({ username: "nobody", password: PASSWORD }), {
      name: "AuthError",
      status: 0,
      code: "network_error",
    });
  });

  test("a session that ended elsewhere: fetch throws invalid_refresh_token and forgets the tokens", async () => {
    const changes: (Tokens | null)[] = [];
    const rec = recordingFetch();
    const client = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch, onChange: (t) => changes.push(t) });
    const username = uniqueName();
    await client.signup({ username, password: PASSWORD });
    // Another device logs in: single-session model, this client's refresh token is replaced.
    await new TollgateClient({ baseUrl: server.url }).login({ username, password: PASSWORD });
    await waitForExpiry(client);
    await assert.rejects(client.fetch("/auth/me"), { name: "AuthError", status: 401, code: "invalid_refresh_token" });
    assert.equal(await client.getTokens(), null);
    assert.equal(changes.at(-1), null);
  });
});

describe("fetch: bearer header, refresh, retry", () => {
  test("adds the bearer header and resolves relative URLs against baseUrl", async () => {
    const { client, rec } = await loggedIn();
    await farFromExpiry(client); // however slow this machine is today
    const response = await client.fetch("auth/me");
    assert.equal(response.status, 200);
    assert.deepEqual(rec.calls, [{ method: "GET", path: "/auth/me", status: 200 }]);
    // A fresh token is not refreshed.
    assert.equal(rec.count("/auth/refresh"), 0);
  });

  test("50 parallel calls with an expired access token cause exactly one refresh", async () => {
    const { client, rec } = await loggedIn();
    const before = await client.getTokens();
    await waitForExpiry(client);
    const responses = await Promise.all(Array.from({ length: 50 }, () => client.fetch("/auth/me")));
    assert.deepEqual(
      responses.map((r) => r.status),
      Array(50).fill(200),
    );
    assert.equal(rec.count("/auth/refresh"), 1);
    assert.equal(rec.count("/auth/refresh", 200), 1);
    assert.equal(rec.count("/auth/me", 401), 0, "the client knew the token had expired: no wasted 401s");
    const after = await client.getTokens();
    assert.notEqual(after?.refreshToken, before?.refreshToken);
  });

  test("50 parallel calls that all get 401 share one refresh and each retries once", async () => {
    const { client, rec } = await loggedIn();
    await waitForExpiry(client);
    // Make the client believe its (server-side expired) token is still good, e.g. a wrong clock.
    const tokens = (await client.getTokens())!;
    await client.storage.set({ ...tokens, expiresAt: Date.now() / 1000 + 3600 });
    const responses = await Promise.all(Array.from({ length: 50 }, () => client.fetch("/auth/me")));
    assert.deepEqual(
      responses.map((r) => r.status),
      Array(50).fill(200),
    );
    assert.equal(rec.count("/auth/refresh"), 1);
    assert.equal(rec.count("/auth/me", 401), 50);
    assert.equal(rec.count("/auth/me", 200), 50);
  });

  test("refreshes shortly before expiry (30 s by default), so the request never sees a 401", async () => {
    const { client, rec } = await loggedIn();
    const tokens = (await client.getTokens())!;
    // As if the token had a 10-minute lifetime: 31 s left is fine, 29 s left is "shortly before".
    await client.storage.set({ ...tokens, expiresIn: 600, expiresAt: Date.now() / 1000 + 31 });
    await client.fetch("/auth/me");
    assert.equal(rec.count("/auth/refresh"), 0, "a token with more than the leeway left is used as is");
    await client.storage.set({ ...(await client.getTokens())!, expiresIn: 600, expiresAt: Date.now() / 1000 + 29 });
    const response = await client.fetch("/auth/me");
    assert.equal(response.status, 200);
    assert.deepEqual(
      rec.calls.map((c) => `${c.path} ${c.status}`),
      ["/auth/me 200", "/auth/refresh 200", "/auth/me 200"],
    );
  });

  test("the leeway is capped at half the lifetime: a 2 s token is refreshed in its second second", async () => {
    const { client, rec } = await loggedIn({ refreshLeewaySecs: 30 });
    const tokens = (await client.getTokens())!;
    assert.equal(tokens.expiresIn, 2);
    await client.storage.set({ ...tokens, expiresAt: Date.now() / 1000 + 1.5 });
    await client.fetch("/auth/me");
    assert.equal(rec.count("/auth/refresh"), 0, "1.5 s left of 2: not yet");
    await client.storage.set({ ...(await client.getTokens())!, expiresIn: 2, expiresAt: Date.now() / 1000 + 0.5 });
    await client.fetch("/auth/me");
    assert.equal(rec.count("/auth/refresh"), 1, "0.5 s left of 2: refreshed first");
  });

  test("a 401 triggers one refresh and one retry (with the request body sent again)", async () => {
    const { client, rec } = await loggedIn();
    const tokens = (await client.getTokens())!;
    await client.storage.set({ ...tokens, accessToken: "eyJhbGciOiJub25lIn0.e30.forged" });
    const response = await client.fetch("/auth/password", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ current_password: PASSWORD, new_password: "yet another passphrase" }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(
      rec.calls.map((c) => `${c.method} ${c.path} ${c.status}`),
      ["POST /auth/password 401", "POST /auth/refresh 200", "POST /auth/password 200"],
    );
  });

  test("retries a Request object too, and gives up after one retry", async () => {
    const rec = recordingFetch();
    // A server that always says 401: the client must not loop.
    let refreshes = 0;
    const always401 = async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = input instanceof Request ? input.url : String(input);
      if (url.endsWith("/auth/refresh")) refreshes += 1;
      if (!url.endsWith("/auth/me")) return rec.fetch(input, init);
      await rec.fetch(input, init); // recorded, but answered with a 401 regardless
      return new Response(JSON.stringify({ error: "no", code: "invalid_token" }), { status: 401 });
    };
    const client = new TollgateClient({ baseUrl: server.url, fetch: always401 });
    await client.signup({ username: uniqueName(), password: PASSWORD });
    const response = await client.fetch(new Request(`${server.url}/auth/me`, { headers: { "x-trace": "1" } }));
    assert.equal(response.status, 401);
    assert.equal(refreshes, 1);
  });

  test("no session: the request goes out without a header, and a 401 is simply returned", async () => {
    const rec = recordingFetch();
    const client = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch });
    const response = await client.fetch("/auth/me");
    assert.equal(response.status, 401);
    assert.equal(rec.count("/auth/refresh"), 0);
  });

  test("explicit refresh() rotates the pair; concurrent calls share it", async () => {
    const { client, rec } = await loggedIn();
    const before = (await client.getTokens())!;
    const [a, b, c] = await Promise.all([client.refresh(), client.refresh(), client.refresh()]);
    assert.equal(rec.count("/auth/refresh"), 1);
    assert.equal(a, b);
    assert.equal(b, c);
    assert.notEqual(a.refreshToken, before.refreshToken);
    assert.equal((await client.me()).username, before.user?.username);
  });

  test("decodeJwtPayload reads exp from a real token", async () => {
    const { client } = await loggedIn();
    const tokens = (await client.getTokens())!;
    const claims = decodeJwtPayload(tokens.accessToken)!;
    assert.equal(claims.sub, tokens.user?.id);
    assert.equal(typeof claims.exp, "number");
    assert.equal((claims.exp as number) - (claims.iat as number), 2);
    assert.equal(decodeJwtPayload("not a jwt"), null);
  });
});

describe("storage adapters", () => {
  test("MemoryStorage is the default", async () => {
    const client = new TollgateClient({ baseUrl: server.url });
    assert.ok(client.storage instanceof MemoryStorage);
  });

  test("LocalStorageStorage keeps the tokens as JSON under its key, and survives a new client", async () => {
    const localStorage = new FakeLocalStorage();
    const storage = new LocalStorageStorage("tollgate.tokens", localStorage);
    const { username } = await loggedIn({ storage });
    const saved = JSON.parse(localStorage.getItem("tollgate.tokens")!) as Tokens;
    assert.equal(saved.user?.username, username);
    assert.ok(saved.accessToken && saved.refreshToken);
    // A page reload: a new client over the same storage is still logged in.
    const reloaded = new TollgateClient({ baseUrl: server.url, storage: new LocalStorageStorage("tollgate.tokens", localStorage) });
    assert.equal((await reloaded.me()).username, username);
    await reloaded.logout();
    assert.equal(localStorage.getItem("tollgate.tokens"), null);
    // A corrupt entry reads as logged out rather than throwing.
    localStorage.setItem("tollgate.tokens", "{not json");
    assert.equal(storage.get(), null);
  });

  test("LocalStorageStorage uses globalThis.localStorage when none is passed", () => {
    const fake = new FakeLocalStorage();
    (globalThis as { localStorage?: WebStorageLike }).localStorage = fake;
    try {
      new LocalStorageStorage().set({ accessToken: "a" });
      assert.equal(fake.getItem("tollgate.tokens"), '{"accessToken":"a"}');
    } finally {
      delete (globalThis as { localStorage?: WebStorageLike }).localStorage;
    }
    assert.throws(() => new LocalStorageStorage(), /no localStorage/);
  });

  test("an async adapter (like secure storage on a phone) works", async () => {
    const box = new Map<string, string>();
    const secureStore: TokenStorage = {
      get: async () => {
        await sleep(1);
        const raw = box.get("t");
        return raw ? (JSON.parse(raw) as Tokens) : null;
      },
      set: async (t) => {
        await sleep(1);
        box.set("t", JSON.stringify(t));
      },
      clear: async () => {
        box.delete("t");
      },
    };
    const { client, rec, username } = await loggedIn({ storage: secureStore });
    assert.ok(box.has("t"));
    await waitForExpiry(client);
    const responses = await Promise.all(Array.from({ length: 10 }, () => client.fetch("/auth/me")));
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(rec.count("/auth/refresh"), 1);
    assert.equal((await client.me()).username, username);
    await client.logout();
    assert.equal(box.has("t"), false);
  });

  test("two 'tabs' sharing localStorage and a BroadcastChannel lock refresh once between them", async () => {
    const localStorage = new FakeLocalStorage();
    const rec = recordingFetch();
    const tab = () =>
      new TollgateClient({
        baseUrl: server.url,
        fetch: rec.fetch,
        storage: new LocalStorageStorage("tollgate.tokens", localStorage),
        lock: broadcastChannelLock()!,
      });
    const [tabA, tabB] = [tab(), tab()];
    await tabA.signup({ username: uniqueName(), password: PASSWORD });
    await waitForExpiry(tabA);
    rec.reset();
    const responses = await Promise.all([
      ...Array.from({ length: 25 }, () => tabA.fetch("/auth/me")),
      ...Array.from({ length: 25 }, () => tabB.fetch("/auth/me")),
    ]);
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(rec.count("/auth/refresh"), 1, "tab B used tab A's new tokens instead of refreshing again");
  });
});
