// Password reset by mail against a real tollgate that sends through a MailDev: forgot ->
// the mail -> resetPassword -> login with the new password, the token's single use, the
// second step for an account with a factor, and the answers while mail is off.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError, TollgateClient, decodeJwtPayload } from "tollgate-client";
import { hasLink, mailEnv, startMaildev, tokenOf, type MailDev } from "./maildev.js";
import { PASSWORD, asSession, startTollgate, uniqueName, type Tollgate } from "./server.js";
import { enrol } from "./totp.js";

const NEW_PASSWORD = "a new horse, a new battery";

let mail: MailDev;
let server: Tollgate;
let mailOff: Tollgate;
before(async () => {
  mail = await startMaildev();
  [server, mailOff] = await Promise.all([
    startTollgate((port) => ({
      ...mailEnv(mail),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      // Access tokens that outlive every test: a 401 then means the session was ended.
      ACCESS_TOKEN_TTL_SECS: "300",
      JWT_LEEWAY_SECS: "1",
    })),
    startTollgate({ ACCESS_TOKEN_TTL_SECS: "300" }),
  ]);
});
after(async () => {
  await Promise.all([server?.stop(), mailOff?.stop()]);
  await mail?.stop();
});

const resetBase = () => `${server.url}/auth/password/reset`;
const client = (on: Tollgate = server) => new TollgateClient({ baseUrl: on.url });

/** A new account with an address of its own; its client is logged in. */
async function account(): Promise<{ username: string; email: string; device: TollgateClient }> {
  const username = uniqueName("pw");
  const email = `${username}@example.com`;
  const device = client();
  await device.signup({ username, password: PASSWORD, email });
  return { username, email, device };
}

/** forgotPassword(email), then the token of the reset mail that comes for it. */
async function requestReset(email: string): Promise<string> {
  await client().forgotPassword(email);
  const letter = await mail.next(email, (m) => hasLink(m, resetBase()));
  return tokenOf(letter, resetBase());
}

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

describe("forgotPassword() and resetPassword()", () => {
  test("forgot -> a mail with a reset link in both parts -> reset -> login with the new password", async () => {
    const { username, email, device } = await account();
    const browser = client();
    await browser.forgotPassword(email);

    const letter = await mail.next(email, (m) => hasLink(m, resetBase()));
    assert.deepEqual(letter.from.map((f) => f.address), ["no-reply@example.com"]);
    assert.deepEqual(letter.to.map((t) => t.address), [email]);
    assert.ok(letter.text?.includes(username) && letter.html?.includes(username), "the mail names the account");
    const token = tokenOf(letter, resetBase());
    assert.match(token, /^tgm_[A-Za-z0-9_-]{43}$/);

    // Opening the link (a mail scanner, the user) serves the page and uses nothing.
    const page = await fetch(`${resetBase()}?token=${token}`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    await page.text();

    const reset = asSession(await browser.resetPassword(token, NEW_PASSWORD));
    assert.equal(reset.user.username, username);
    assert.equal(reset.token_type, "Bearer");
    assert.ok(reset.access_token && reset.refresh_token);
    assert.equal((await browser.getTokens())?.accessToken, reset.access_token, "the new session is stored");
    assert.equal((await browser.me()).username, username);

    // The new password logs in, the old one no longer does.
    const later = client();
    await later.login({ username, password: NEW_PASSWORD });
    await rejects(client().login({ username, password: PASSWORD }), 401, "invalid_credentials");
    // The session from before the reset is over.
    await rejects(device.refresh(), 401, "invalid_refresh_token");
    assert.equal(await device.getTokens(), null);
  });

  test("an account with a second factor: resetPassword sets the password but answers mfa_required; completeMfaLogin signs in", async () => {
    const { username, email, device } = await account();
    const { recoveryCodes } = await enrol(device, PASSWORD);
    const token = await requestReset(email);
    const browser = client();
    const reset = await browser.resetPassword(token, NEW_PASSWORD);
    assert.equal(reset.kind, "mfa_required", JSON.stringify(reset));
    if (reset.kind !== "mfa_required") return;
    assert.match(reset.mfaToken, /^tgf_/);
    assert.deepEqual(reset.methods, ["totp", "recovery_code"]);
    assert.equal(await browser.getTokens(), null, "no session before the second step");
    // The sessions ended and the password changed all the same.
    await rejects(device.refresh(), 401, "invalid_refresh_token");
    await rejects(client().login({ username, password: PASSWORD }), 401, "invalid_credentials");

    const session = await browser.completeMfaLogin(reset.mfaToken, recoveryCodes[0]!);
    assert.equal(session.user.username, username);
    assert.deepEqual(decodeJwtPayload(session.access_token)?.amr, ["mfa", "otp", "pwd"]);
    assert.equal((await browser.getTokens())?.accessToken, session.access_token);
    // The new password's login takes the second step too.
    assert.equal((await client().login({ username, password: NEW_PASSWORD })).kind, "mfa_required");
  });

  test("a reset token works once: the second use is 401 invalid_reset_token", async () => {
    const { username, email } = await account();
    const token = await requestReset(email);
    await client().resetPassword(token, NEW_PASSWORD);
    await rejects(client().resetPassword(token, "yet another password"), 401, "invalid_reset_token");
    // The second attempt changed nothing.
    await client().login({ username, password: NEW_PASSWORD });
  });

  test("a password the rules refuse is 422 validation_failed and the token stays usable", async () => {
    const { username, email } = await account();
    const token = await requestReset(email);
    await rejects(client().resetPassword(token, "short"), 422, "validation_failed");
    await client().resetPassword(token, NEW_PASSWORD);
    await client().login({ username, password: NEW_PASSWORD });
  });

  test("an unknown or forged token is 401 invalid_reset_token", async () => {
    await rejects(client().resetPassword(`tgm_${"A".repeat(43)}`, NEW_PASSWORD), 401, "invalid_reset_token");
    await rejects(client().resetPassword("not a token", NEW_PASSWORD), 401, "invalid_reset_token");
  });

  test("two accounts with one address each get their own mail, and each token resets its own account", async () => {
    const email = `${uniqueName("shared")}@example.com`;
    const names = [uniqueName("pwa"), uniqueName("pwb")];
    for (const username of names) await client().signup({ username, password: PASSWORD, email });
    await client().forgotPassword(email);
    const letters = [
      await mail.next(email, (m) => hasLink(m, resetBase())),
      await mail.next(email, (m) => hasLink(m, resetBase())),
    ];
    const reset = [];
    for (const letter of letters) {
      const token = tokenOf(letter, resetBase());
      reset.push(asSession(await client().resetPassword(token, `${NEW_PASSWORD} ${letter.id}`)).user.username);
    }
    assert.deepEqual(reset.sort(), [...names].sort());
  });

  test("an address no account has: 202 all the same", async () => {
    await client().forgotPassword(`${uniqueName("nobody")}@example.com`);
  });

  test("not an address: 422 validation_failed", async () => {
    await rejects(client().forgotPassword("not an address"), 422, "validation_failed");
  });

  test("while mail is off (no SMTP_URL): 404 not_found", async () => {
    await rejects(client(mailOff).forgotPassword("someone@example.com"), 404, "not_found");
    await rejects(client(mailOff).resetPassword(`tgm_${"A".repeat(43)}`, NEW_PASSWORD), 404, "not_found");
  });
});
