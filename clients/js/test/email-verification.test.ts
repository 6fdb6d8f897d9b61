// Email verification and change against a real tollgate that sends through a MailDev:
// signup with an email -> the verification mail -> verifyEmail -> email_verified; resend;
// changeEmail -> a link to the new address and a notice to the old one -> verifyEmail ->
// me() shows the new address.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError, TollgateClient } from "tollgate-client";
import { hasLink, mailEnv, startMaildev, tokenOf, tokensIn, type MailDev } from "./maildev.js";
import { PASSWORD, asSession, startTollgate, uniqueName, type Tollgate } from "./server.js";

let mail: MailDev;
let server: Tollgate;
before(async () => {
  mail = await startMaildev();
  server = await startTollgate((port) => ({
    ...mailEnv(mail),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    // resendVerificationEmail() right after signup must send again.
    MAIL_COOLDOWN_SECS: "0",
    ACCESS_TOKEN_TTL_SECS: "300",
    JWT_LEEWAY_SECS: "1",
  }));
});
after(async () => {
  await server?.stop();
  await mail?.stop();
});

const verifyBase = () => `${server.url}/auth/email/verify`;
const resetBase = () => `${server.url}/auth/password/reset`;
const client = () => new TollgateClient({ baseUrl: server.url });
const address = (name: string) => `${name}@example.com`;

/** The token of the next verification mail to `email`. */
async function verificationToken(email: string): Promise<string> {
  return tokenOf(await mail.next(email, (m) => hasLink(m, verifyBase())), verifyBase());
}

/** A new account with an address, logged in; its signup's verification mail not yet read. */
async function account() {
  const username = uniqueName("ev");
  const email = address(username);
  const device = client();
  const signup = await device.signup({ username, password: PASSWORD, email });
  return { username, email, device, signup };
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

describe("verifyEmail(), resendVerificationEmail()", () => {
  test("signup with an email -> a verification mail -> verifyEmail -> email_verified true", async () => {
    const { username, email, device, signup } = await account();
    assert.equal(signup.user.email, email);
    assert.equal(signup.user.email_verified, false);
    assert.equal((await device.me()).email_verified, false);

    const letter = await mail.next(email, (m) => hasLink(m, verifyBase()));
    assert.deepEqual(letter.from.map((f) => f.address), ["no-reply@example.com"]);
    const token = tokenOf(letter, verifyBase());
    assert.match(token, /^tgm_[A-Za-z0-9_-]{43}$/);

    // Opening the link serves the page with its button; it verifies nothing.
    const page = await fetch(`${verifyBase()}?token=${token}`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    await page.text();
    assert.equal((await device.me()).email_verified, false);

    // Verified from anywhere (the link may be opened on another device, logged out).
    const user = await client().verifyEmail(token);
    assert.equal(user.username, username);
    assert.equal(user.email, email);
    assert.equal(user.email_verified, true);
    assert.equal((await device.me()).email_verified, true);

    // Single use.
    await rejects(client().verifyEmail(token), 401, "invalid_verification_token");
  });

  test("signup without an email: email_verified false, no address to verify", async () => {
    const device = client();
    const signup = await device.signup({ username: uniqueName("ev"), password: PASSWORD });
    assert.equal(signup.user.email, null);
    assert.equal(signup.user.email_verified, false);
  });

  test("an unknown or forged token is 401 invalid_verification_token", async () => {
    await rejects(client().verifyEmail(`tgm_${"A".repeat(43)}`), 401, "invalid_verification_token");
    await rejects(client().verifyEmail("not a token"), 401, "invalid_verification_token");
  });

  test("resendVerificationEmail() mails a new link, which verifies", async () => {
    const { email, device } = await account();
    const first = await verificationToken(email);
    await device.resendVerificationEmail();
    const second = await verificationToken(email);
    assert.notEqual(second, first, "a new token");
    assert.equal((await client().verifyEmail(second)).email_verified, true);
    assert.equal((await device.me()).email_verified, true);
  });

  test("a password reset by mail counts as a verification of the address", async () => {
    const { email, device } = await account();
    await verificationToken(email); // the signup's, left unused
    await client().forgotPassword(email);
    const token = tokenOf(await mail.next(email, (m) => hasLink(m, resetBase())), resetBase());
    const reset = asSession(await device.resetPassword(token, "a new horse, a new battery"));
    assert.equal(reset.user.email_verified, true);
    assert.equal((await device.me()).email_verified, true);
  });
});

describe("changeEmail()", () => {
  test("a link to the new address and a notice to the old; the address changes when the link is used", async () => {
    const { username, email: old, device } = await account();
    await device.verifyEmail(await verificationToken(old));
    const fresh = address(uniqueName("new"));

    await device.changeEmail(fresh, PASSWORD);
    const link = await mail.next(fresh, (m) => hasLink(m, verifyBase()));
    const token = tokenOf(link, verifyBase());
    const notice = await mail.next(old);
    assert.ok(notice.text && notice.html, "the notice has a text and an HTML part");
    assert.deepEqual(tokensIn(notice), [], "the notice to the old address carries no token");

    // Nothing changed yet.
    const before = await device.me();
    assert.equal(before.email, old);
    assert.equal(before.email_verified, true);

    const user = await client().verifyEmail(token);
    assert.equal(user.username, username);
    assert.equal(user.email, fresh);
    assert.equal(user.email_verified, true);
    const after = await device.me();
    assert.equal(after.email, fresh);
    assert.equal(after.email_verified, true);
    await rejects(client().verifyEmail(token), 401, "invalid_verification_token");
  });

  test("an account without an address gets one the same way (no notice to send)", async () => {
    const device = client();
    await device.signup({ username: uniqueName("ev"), password: PASSWORD });
    const fresh = address(uniqueName("first"));
    await device.changeEmail(fresh, PASSWORD);
    assert.equal((await device.me()).email, null);
    const user = await client().verifyEmail(await verificationToken(fresh));
    assert.equal(user.email, fresh);
    assert.equal(user.email_verified, true);
  });

  test("a wrong current password is 401 invalid_credentials; the session goes on", async () => {
    const { email, device } = await account();
    await rejects(device.changeEmail(address(uniqueName("x")), "not the password"), 401, "invalid_credentials");
    assert.notEqual(await device.getTokens(), null);
    assert.equal((await device.me()).email, email);
  });

  test("a malformed address is 422 validation_failed", async () => {
    const { email, device } = await account();
    await rejects(device.changeEmail("not an address", PASSWORD), 422, "validation_failed");
    assert.equal((await device.me()).email, email);
  });

  test("without a login: the client refuses, as for every bearer call", async () => {
    await assert.rejects(client().changeEmail(address(uniqueName("x")), PASSWORD), (e: unknown) => {
      assert.ok(e instanceof AuthError && e.status === 401, String(e));
      return true;
    });
  });
});
