// The second factor against a real tollgate: TOTP enrolment (setupTotp -> confirmTotp), the
// two-step login (login -> mfa_required -> completeMfaLogin), `amr`, the single use of TOTP and
// recovery codes, the mfa_token's death after five wrong codes, new recovery codes, removing
// the factor, and cookie mode. The codes come from test/totp.ts, as an authenticator app's.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError, TollgateClient, decodeJwtPayload, type LoginResult, type MfaRequired } from "tollgate-client";
import { Authenticator, base32Decode, enrol, totp } from "./totp.js";
import {
  PASSWORD,
  asSession,
  browserFetch,
  recordingFetch,
  startTollgate,
  supportsCookieMode,
  uniqueName,
  type Tollgate,
} from "./server.js";

const APP_ORIGIN = "http://app.example.test";

let server: Tollgate;
before(async () => {
  // Access tokens of 2 s (the default of these tests) and the client's leeway: bearer calls
  // refresh as they go, and a refresh must keep the session's amr.
  server = await startTollgate({ REFRESH_TOKEN_COOKIE: "true", CORS_ALLOWED_ORIGINS: APP_ORIGIN, JWT_LEEWAY_SECS: "1" });
});
after(async () => {
  await server?.stop();
});

async function rejects(promise: Promise<unknown>, status: number, code: string): Promise<AuthError> {
  const e = await promise.then(
    () => assert.fail(`expected ${status} ${code}, got success`),
    (caught: unknown) => caught,
  );
  assert.ok(e instanceof AuthError, `an AuthError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.equal(e.status, status);
  return e;
}

function mfaRequired(result: LoginResult): MfaRequired {
  assert.equal(result.kind, "mfa_required", `expected the second step, got ${JSON.stringify(result)}`);
  return result as MfaRequired;
}

const amrOf = (accessToken: string) => decodeJwtPayload(accessToken)?.amr;

/** A new account with TOTP on; its client (logged in by password, amr ["pwd"]), app and recovery codes. */
async function enrolled(options: { fetch?: typeof fetch } = {}) {
  const username = uniqueName("mfa");
  const device = new TollgateClient({ baseUrl: server.url, ...options });
  await device.signup({ username, password: PASSWORD });
  return { username, device, ...(await enrol(device, PASSWORD)) };
}

test("the TOTP of the tests is RFC 6238's (SHA-1 test vectors, 6 digits)", () => {
  const key = Buffer.from("12345678901234567890");
  assert.deepEqual(base32Decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), key);
  // RFC 6238 appendix B: 94287082 at 59 s, 07081804 at 1111111109 s, 14050471 at 1111111111 s (last 6 digits).
  assert.equal(totp(key, Math.floor(59 / 30)), "287082");
  assert.equal(totp(key, Math.floor(1111111109 / 30)), "081804");
  assert.equal(totp(key, Math.floor(1111111111 / 30)), "050471");
});

describe("enrolment", () => {
  test("setupTotp -> secret and otpauth URI; confirmTotp -> ten recovery codes; me().mfa_enabled", async () => {
    const rec = recordingFetch();
    const username = uniqueName("enrol");
    const device = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch });
    const signedUp = await device.signup({ username, password: PASSWORD });
    assert.equal(signedUp.user.mfa_enabled, false);
    assert.deepEqual(amrOf(signedUp.access_token), ["pwd"]);

    // A wrong password: 401 invalid_credentials, the session goes on, and no refresh or retry.
    await rejects(device.setupTotp("not the password"), 401, "invalid_credentials");
    assert.equal(rec.count("/auth/mfa/totp/setup"), 1);

    const setup = await device.setupTotp(PASSWORD);
    assert.match(setup.secret, /^[A-Z2-7]{16,}$/);
    assert.ok(base32Decode(setup.secret).length >= 20, "at least 160 bits (RFC 4226)");
    const uri = new URL(setup.otpauth_uri);
    assert.equal(uri.protocol, "otpauth:");
    assert.equal(uri.host, "totp");
    assert.ok(decodeURIComponent(uri.pathname).endsWith(`:${username}`), setup.otpauth_uri);
    assert.equal(uri.searchParams.get("secret"), setup.secret);
    assert.ok(uri.searchParams.get("issuer"), "an issuer");
    // Not on until confirmed.
    assert.equal((await device.me()).mfa_enabled, false);
    const app = new Authenticator(setup.secret);

    // A wrong code: 401 invalid_mfa_code, sent once (a 401 about the code is not the token's).
    rec.reset();
    await rejects(device.confirmTotp(app.wrongCode()), 401, "invalid_mfa_code");
    assert.equal(rec.count("/auth/mfa/totp/confirm"), 1);
    assert.equal((await device.me()).mfa_enabled, false);

    const codes = await device.confirmTotp(await app.code());
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10, "distinct");
    for (const code of codes) assert.match(code, /^[a-z0-9]{5}-[a-z0-9]{5}$/);
    assert.equal((await device.me()).mfa_enabled, true);
    // The session that enrolled goes on.
    assert.equal((await device.getTokens())?.user?.username, username);
  });

  test("a second setup needs a code of the factor on as well as the password", async () => {
    const { device, recoveryCodes } = await enrolled();
    await rejects(device.setupTotp(PASSWORD), 401, "invalid_mfa_code");
    await rejects(device.setupTotp(PASSWORD, "000000x"), 401, "invalid_mfa_code");
    const again = await device.setupTotp(PASSWORD, recoveryCodes[0]);
    assert.match(again.secret, /^[A-Z2-7]{16,}$/);
  });
});

describe("the two-step login", () => {
  test("login -> mfa_required -> completeMfaLogin: a session with amr [mfa, otp, pwd], kept by refresh", async () => {
    const { username, app, recoveryCodes } = await enrolled();
    const rec = recordingFetch();
    const device = new TollgateClient({ baseUrl: server.url, fetch: rec.fetch });
    const changes: unknown[] = [];
    const watched = new TollgateClient({ baseUrl: server.url, onChange: (t) => changes.push(t) });

    const first = mfaRequired(await device.login({ username, password: PASSWORD }));
    assert.match(first.mfaToken, /^tgf_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(first.methods, ["totp", "recovery_code"]);
    assert.equal(first.expiresIn, 300);
    assert.equal(await device.getTokens(), null, "nothing stored before the second step");
    assert.equal(rec.count("/auth/login", 200), 1);

    // A wrong password is still an error, not a second step.
    await rejects(device.login({ username, password: "not the password" }), 401, "invalid_credentials");

    // A wrong code: 401 invalid_mfa_code, nothing stored, and the mfa_token lives on.
    await rejects(device.completeMfaLogin(first.mfaToken, app.wrongCode()), 401, "invalid_mfa_code");
    assert.equal(await device.getTokens(), null);

    const session = await device.completeMfaLogin(first.mfaToken, await app.code());
    assert.equal(session.kind, "session");
    assert.equal(session.user.username, username);
    assert.equal(session.user.mfa_enabled, true);
    assert.ok(session.refresh_token);
    assert.deepEqual(amrOf(session.access_token), ["mfa", "otp", "pwd"]);
    const stored = (await device.getTokens())!;
    assert.equal(stored.accessToken, session.access_token, "stored as after login");
    assert.equal(stored.refreshToken, session.refresh_token);
    assert.equal((await device.me()).username, username);

    // The mfa_token was single-use.
    await rejects(device.completeMfaLogin(first.mfaToken, app.wrongCode()), 401, "invalid_mfa_token");

    // A refresh keeps the session's amr.
    const refreshed = await device.refresh();
    assert.notEqual(refreshed.accessToken, session.access_token);
    assert.deepEqual(amrOf(refreshed.accessToken), ["mfa", "otp", "pwd"]);

    // onChange fires for the second step, not the first.
    const challenge = mfaRequired(await watched.login({ username, password: PASSWORD }));
    assert.equal(changes.length, 0);
    await rejects(watched.completeMfaLogin(challenge.mfaToken, "not a code"), 401, "invalid_mfa_code");
    assert.equal(changes.length, 0);
    await watched.completeMfaLogin(challenge.mfaToken, recoveryCodes[0]!);
    assert.equal(changes.length, 1);
    assert.equal((changes[0] as { user: { username: string } }).user.username, username);
  });

  test("a TOTP code works once; a recovery code signs in once; a wrong code keeps the mfa_token", async () => {
    const { username, app, confirmedWith, recoveryCodes } = await enrolled();
    const device = new TollgateClient({ baseUrl: server.url });
    const challenge = mfaRequired(await device.login({ username, password: PASSWORD }));

    // The code that confirmed the factor was accepted once: refused now (replay).
    await rejects(device.completeMfaLogin(challenge.mfaToken, confirmedWith), 401, "invalid_mfa_code");

    // A recovery code, with the same mfa_token.
    const byRecovery = await device.completeMfaLogin(challenge.mfaToken, recoveryCodes[0]!);
    assert.deepEqual(amrOf(byRecovery.access_token), ["mfa", "otp", "pwd"]);

    // That recovery code is spent; another one works, with the same mfa_token.
    const again = mfaRequired(await device.login({ username, password: PASSWORD }));
    await rejects(device.completeMfaLogin(again.mfaToken, recoveryCodes[0]!), 401, "invalid_mfa_code");
    const next = await device.completeMfaLogin(again.mfaToken, recoveryCodes[1]!);
    assert.equal(next.user.username, username);

    // A TOTP code of the next step works once, then is refused too.
    const third = mfaRequired(await device.login({ username, password: PASSWORD }));
    const code = await app.code();
    await device.completeMfaLogin(third.mfaToken, code);
    const fourth = mfaRequired(await device.login({ username, password: PASSWORD }));
    await rejects(device.completeMfaLogin(fourth.mfaToken, code), 401, "invalid_mfa_code");
  });

  test(
    "a refused recovery code leaves the mfa_token usable, as a wrong TOTP code does (contract: dies after five wrong codes)",
    async () => {
      const { username, recoveryCodes } = await enrolled();
      const device = new TollgateClient({ baseUrl: server.url });
      const challenge = mfaRequired(await device.login({ username, password: PASSWORD }));
      await rejects(device.completeMfaLogin(challenge.mfaToken, "aaaaa-bbbbb"), 401, "invalid_mfa_code");
      await device.completeMfaLogin(challenge.mfaToken, recoveryCodes[0]!);
    },
  );

  test("five wrong codes kill the mfa_token (invalid_mfa_token); a new login starts afresh", async () => {
    const { username, app, recoveryCodes } = await enrolled();
    const device = new TollgateClient({ baseUrl: server.url });
    const challenge = mfaRequired(await device.login({ username, password: PASSWORD }));
    for (let i = 0; i < 5; i++) {
      await rejects(device.completeMfaLogin(challenge.mfaToken, app.wrongCode()), 401, "invalid_mfa_code");
    }
    await rejects(device.completeMfaLogin(challenge.mfaToken, recoveryCodes[0]!), 401, "invalid_mfa_token");
    assert.equal(await device.getTokens(), null);
    const fresh = mfaRequired(await device.login({ username, password: PASSWORD }));
    assert.equal((await device.completeMfaLogin(fresh.mfaToken, recoveryCodes[0]!)).user.username, username);
  });

  test("an unknown or malformed mfa_token is invalid_mfa_token", async () => {
    const device = new TollgateClient({ baseUrl: server.url });
    await rejects(device.completeMfaLogin(`tgf_${"A".repeat(43)}`, "123456"), 401, "invalid_mfa_token");
    await rejects(device.completeMfaLogin("not a token", "123456"), 401, "invalid_mfa_token");
  });

  test("an account without a factor still logs in in one step: kind session, amr [pwd]", async () => {
    const username = uniqueName("plain");
    await new TollgateClient({ baseUrl: server.url }).signup({ username, password: PASSWORD });
    const device = new TollgateClient({ baseUrl: server.url });
    const result = asSession(await device.login({ username, password: PASSWORD }));
    assert.equal(result.user.mfa_enabled, false);
    assert.deepEqual(amrOf(result.access_token), ["pwd"]);
    assert.equal((await device.getTokens())?.accessToken, result.access_token);
  });
});

describe("managing the factor", () => {
  test("newRecoveryCodes: a new set, the old one stops working", async () => {
    const rec = recordingFetch();
    const { username, device, recoveryCodes } = await enrolled({ fetch: rec.fetch });
    const fresh = await device.newRecoveryCodes(recoveryCodes[0]!);
    assert.equal(fresh.length, 10);
    assert.equal(new Set([...fresh, ...recoveryCodes]).size, 20, "all new");
    rec.reset();
    await rejects(device.newRecoveryCodes(recoveryCodes[1]!), 401, "invalid_mfa_code");
    assert.equal(rec.count("/auth/mfa/recovery-codes"), 1, "a wrong code is sent once, not retried after a refresh");

    const other = new TollgateClient({ baseUrl: server.url });
    const challenge = mfaRequired(await other.login({ username, password: PASSWORD }));
    await rejects(other.completeMfaLogin(challenge.mfaToken, recoveryCodes[2]!), 401, "invalid_mfa_code");
    const retry = mfaRequired(await other.login({ username, password: PASSWORD }));
    await other.completeMfaLogin(retry.mfaToken, fresh[0]!);
  });

  test("disableTotp: a wrong code is refused; a recovery code removes the factor; login is one step again", async () => {
    const rec = recordingFetch();
    const { username, device, app, recoveryCodes } = await enrolled({ fetch: rec.fetch });
    rec.reset();
    await rejects(device.disableTotp(app.wrongCode()), 401, "invalid_mfa_code");
    assert.equal(rec.count("/auth/mfa/totp"), 1);
    assert.equal((await device.me()).mfa_enabled, true);

    await device.disableTotp(recoveryCodes[0]!);
    assert.equal(rec.count("/auth/mfa/totp", 204), 1);
    assert.equal((await device.me()).mfa_enabled, false);
    const result = asSession(await new TollgateClient({ baseUrl: server.url }).login({ username, password: PASSWORD }));
    assert.deepEqual(amrOf(result.access_token), ["pwd"]);
    // Nothing left to disable, nor recovery codes to renew.
    await rejects(device.disableTotp(recoveryCodes[1]!), 401, "invalid_mfa_code");
    await rejects(device.newRecoveryCodes(recoveryCodes[1]!), 401, "invalid_mfa_code");
  });

  test("a TOTP code removes the factor too", async () => {
    const { device, app } = await enrolled();
    await device.disableTotp(await app.code());
    assert.equal((await device.me()).mfa_enabled, false);
  });
});

describe("cookie mode", () => {
  test("completeMfaLogin keeps the refresh token in the cookie, never in storage; refresh keeps amr", async (t) => {
    if (!(await supportsCookieMode(server, APP_ORIGIN))) return t.skip("no cookie mode on this server");
    const { username, recoveryCodes } = await enrolled();
    const { fetch: browser, jar } = browserFetch(APP_ORIGIN);
    const page = new TollgateClient({ baseUrl: server.url, mode: "cookie", fetch: browser });
    const challenge = mfaRequired(await page.login({ username, password: PASSWORD }));
    assert.equal(jar.has("tollgate_refresh"), false, "no cookie before the second step");
    const session = await page.completeMfaLogin(challenge.mfaToken, recoveryCodes[0]!);
    assert.equal(session.refresh_token, undefined, "no refresh token in the JSON");
    assert.ok(jar.get("tollgate_refresh"), "the refresh cookie is set");
    assert.equal((await page.getTokens())?.refreshToken, undefined);
    const refreshed = await page.refresh();
    assert.deepEqual(amrOf(refreshed.accessToken), ["mfa", "otp", "pwd"]);
    assert.equal((await page.me()).username, username);
  });
});
