// Sessions and devices against a real tollgate with SESSIONS_PER_USER=3: sessions(),
// endSession() and logout({ scope }), in body mode and cookie mode.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError, TollgateClient, decodeJwtPayload, type LogoutScope, type Session } from "tollgate-client";
import { PASSWORD, browserFetch, startTollgate, uniqueName, type Tollgate } from "./server.js";

const APP_ORIGIN = "http://app.example.test";
// Access tokens that outlive every test: a 401 then means the session was ended, not that
// the token expired.
const ENV = { SESSIONS_PER_USER: "3", ACCESS_TOKEN_TTL_SECS: "300", JWT_LEEWAY_SECS: "1" };

let server: Tollgate;
let cookieServer: Tollgate;
before(async () => {
  [server, cookieServer] = await Promise.all([
    startTollgate(ENV),
    startTollgate({ ...ENV, REFRESH_TOKEN_COOKIE: "true", CORS_ALLOWED_ORIGINS: APP_ORIGIN }),
  ]);
});
after(async () => {
  await Promise.all([server?.stop(), cookieServer?.stop()]);
});

/** `count` clients logged in as one new user, each its own session (the first one signed up). */
async function devices(count: number, make = () => new TollgateClient({ baseUrl: server.url })) {
  const username = uniqueName("dev");
  const clients = [make()];
  await clients[0]!.signup({ username, password: PASSWORD });
  for (let i = 1; i < count; i++) {
    const client = make();
    await client.login({ username, password: PASSWORD });
    clients.push(client);
  }
  return clients;
}

async function accessToken(client: TollgateClient): Promise<string> {
  const token = (await client.getTokens())?.accessToken;
  assert.ok(token, "logged in");
  return token;
}

async function sid(client: TollgateClient): Promise<string> {
  const claim = decodeJwtPayload(await accessToken(client))?.sid;
  assert.equal(typeof claim, "string", "the access token carries sid");
  return claim as string;
}

/** What tollgate says to /auth/me with this access token, asked directly (no client, no refresh). */
async function meStatus(on: Tollgate, token: string): Promise<number> {
  return (await fetch(`${on.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status;
}

describe("sessions(), endSession()", () => {
  test("two logins: both sessions are listed, most recently used first, the caller's marked current", async () => {
    const [laptop, phone] = await devices(2);
    const listed: Session[] = await laptop.sessions();
    assert.equal(listed.length, 2);
    assert.deepEqual(listed.map((s) => s.id).sort(), [await sid(laptop), await sid(phone)].sort());
    assert.deepEqual(
      listed.filter((s) => s.current).map((s) => s.id),
      [await sid(laptop)],
    );
    for (const session of listed) {
      for (const time of [session.created_at, session.last_used_at, session.expires_at]) {
        assert.ok(!Number.isNaN(Date.parse(time)), `an RFC 3339 time: ${time}`);
      }
      assert.ok(Date.parse(session.expires_at) > Date.now());
      assert.ok(session.user_agent === null || typeof session.user_agent === "string");
      assert.ok(session.ip === null || typeof session.ip === "string");
    }
    const used = listed.map((s) => Date.parse(s.last_used_at));
    assert.deepEqual(used, [...used].sort((a, b) => b - a), "most recently used first");
    // The other device sees the same two, with itself current.
    const seen = await phone.sessions();
    assert.deepEqual(seen.map((s) => s.id).sort(), listed.map((s) => s.id).sort());
    assert.equal(seen.find((s) => s.current)?.id, await sid(phone));
  });

  test("endSession of the other device: its access token gets 401 at once, its refresh token too; this one keeps working", async () => {
    const [laptop, phone] = await devices(2);
    const phoneToken = await accessToken(phone);
    assert.equal(await meStatus(server, phoneToken), 200);
    await laptop.endSession(await sid(phone));
    assert.equal(await meStatus(server, phoneToken), 401);
    await assert.rejects(phone.refresh(), { name: "AuthError", status: 401, code: "invalid_refresh_token" });
    assert.equal(await phone.getTokens(), null, "the ended device forgets its tokens on its next refresh");
    const left = await laptop.sessions();
    assert.deepEqual(
      left.map((s) => [s.id, s.current]),
      [[await sid(laptop), true]],
    );
    assert.equal(await meStatus(server, await accessToken(laptop)), 200);
  });

  test("endSession of an id that is not the caller's: 404 not_found, nothing ended", async () => {
    const [mine] = await devices(1);
    const [theirs] = await devices(1);
    for (const id of [await sid(theirs!), "00000000-0000-4000-8000-000000000000"]) {
      await assert.rejects(mine!.endSession(id), { name: "AuthError", status: 404, code: "not_found" });
    }
    assert.equal(await meStatus(server, await accessToken(theirs!)), 200);
  });

  test("endSession of its own session is a logout: ended on the server, tokens forgotten", async () => {
    const [laptop, phone] = await devices(2);
    const token = await accessToken(laptop);
    await laptop.endSession(await sid(laptop));
    assert.equal(await laptop.getTokens(), null);
    assert.equal(await meStatus(server, token), 401);
    assert.equal((await phone.sessions()).length, 1);
  });
});

describe("logout({ scope })", () => {
  test("default (local): ends this session only", async () => {
    const [laptop, phone] = await devices(2);
    const token = await accessToken(laptop);
    await laptop.logout();
    assert.equal(await laptop.getTokens(), null);
    assert.equal(await meStatus(server, token), 401);
    assert.equal(await meStatus(server, await accessToken(phone)), 200);
    assert.equal((await phone.sessions()).length, 1);
  });

  test("others: ends every other session and keeps this one, tokens and all", async () => {
    const [laptop, phone, tablet] = await devices(3);
    const before = await laptop.getTokens();
    await laptop.logout({ scope: "others" });
    assert.deepEqual(await laptop.getTokens(), before);
    for (const other of [phone!, tablet!]) assert.equal(await meStatus(server, await accessToken(other)), 401);
    assert.equal((await laptop.me()).id, before?.user?.id);
    await laptop.refresh(); // the refresh chain is intact too
    assert.deepEqual(
      (await laptop.sessions()).map((s) => s.current),
      [true],
    );
  });

  test("global: ends every session, this one included", async () => {
    const [laptop, phone] = await devices(2);
    const token = await accessToken(laptop);
    await laptop.logout({ scope: "global" });
    assert.equal(await laptop.getTokens(), null);
    assert.equal(await meStatus(server, token), 401);
    assert.equal(await meStatus(server, await accessToken(phone)), 401);
  });

  test("an unknown scope is refused by the server with 422 validation_failed, and ends nothing", async () => {
    const [laptop, phone] = await devices(2);
    const token = await accessToken(laptop);
    const error = await laptop.logout({ scope: "everywhere" as LogoutScope }).catch((e: unknown) => e);
    assert.ok(error instanceof AuthError, String(error));
    assert.equal(error.status, 422);
    assert.equal(error.code, "validation_failed");
    for (const t of [token, await accessToken(phone)]) assert.equal(await meStatus(server, t), 200);
  });

  test("with only an access token (no refresh token stored), by bearer", async () => {
    const [laptop, phone] = await devices(2);
    const tokens = (await laptop.getTokens())!;
    await laptop.storage.set({ ...tokens, refreshToken: undefined });
    await laptop.logout({ scope: "others" });
    assert.equal(await meStatus(server, await accessToken(phone)), 401);
    assert.equal(await meStatus(server, tokens.accessToken), 200);
  });
});

describe("cookie mode", () => {
  /** Devices that are browsers, each with its own cookie jar. */
  async function browsers(count: number) {
    const made: { client: TollgateClient; browser: ReturnType<typeof browserFetch> }[] = [];
    await devices(count, () => {
      const browser = browserFetch(APP_ORIGIN);
      const client = new TollgateClient({ baseUrl: cookieServer.url, fetch: browser.fetch, mode: "cookie" });
      made.push({ client, browser });
      return client;
    });
    return made;
  }

  test("sessions(); logout({ scope: 'others' }) keeps this tab's session and cookie", async () => {
    const [laptop, phone, tablet] = await browsers(3);
    assert.equal((await laptop!.client.sessions()).length, 3);
    const cookie = laptop!.browser.jar.get("tollgate_refresh");
    assert.ok(cookie);
    await laptop!.client.logout({ scope: "others" });
    assert.equal(laptop!.browser.jar.get("tollgate_refresh"), cookie, "the cookie is kept");
    assert.ok(await laptop!.client.getTokens(), "and the access token");
    for (const other of [phone!, tablet!]) assert.equal(await meStatus(cookieServer, await accessToken(other.client)), 401);
    await laptop!.client.refresh(); // by the cookie
    assert.deepEqual(
      (await laptop!.client.sessions()).map((s) => s.current),
      [true],
    );
  });

  test("logout({ scope: 'others' }) from a new tab (no access token yet) gets one through the cookie", async () => {
    const [laptop, phone] = await browsers(2);
    const tab = new TollgateClient({ baseUrl: cookieServer.url, fetch: laptop!.browser.fetch, mode: "cookie" });
    await tab.logout({ scope: "others" });
    assert.equal(await meStatus(cookieServer, await accessToken(phone!.client)), 401);
    assert.equal(await meStatus(cookieServer, await accessToken(tab)), 200);
    assert.ok(laptop!.browser.jar.has("tollgate_refresh"));
  });

  test("logout({ scope: 'global' }) from a new tab (no access token yet) ends every session and clears the cookie", async () => {
    const [laptop, phone] = await browsers(2);
    const tokens = [await accessToken(laptop!.client), await accessToken(phone!.client)];
    // A new tab of the laptop's browser: the same cookie jar, nothing in memory.
    const tab = new TollgateClient({ baseUrl: cookieServer.url, fetch: laptop!.browser.fetch, mode: "cookie" });
    await tab.logout({ scope: "global" });
    assert.equal(laptop!.browser.jar.has("tollgate_refresh"), false, "the cookie is cleared");
    assert.equal(await tab.getTokens(), null);
    for (const token of tokens) assert.equal(await meStatus(cookieServer, token), 401);
  });
});
