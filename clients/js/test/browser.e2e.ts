// End-to-end: the demo page served by a real tollgate (DEMO_UI=true), driven in Debian's
// headless Chromium with playwright-core. Body mode (localStorage shared by tabs) and cookie
// mode (REFRESH_TOKEN_COOKIE=true), including two tabs refreshing at the same moment and a
// cross-site page trying to use the refresh cookie; enrolling a second factor through the QR
// code (read back with an independent decoder) and the two-step login.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import decodeQR from "qr/decode.js";
import { decodeJwtPayload } from "tollgate-client";
import { PASSWORD, freePort, packageDir, startTollgate, supportsCookieMode, uniqueName, type Tollgate } from "./server.js";
import { Authenticator } from "./totp.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps dialling Google on this closed network.
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const RESULTS = join(packageDir, "test-results");
// Short-lived access tokens, so that the test can wait for them to expire; long enough that a
// busy machine does not see them expire between two steps of one check.
const DEMO_ENV = { DEMO_UI: "true", DEMO_UI_DIR: packageDir, ACCESS_TOKEN_TTL_SECS: "5", JWT_LEEWAY_SECS: "1" };

let browser: Browser;
before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});
after(async () => {
  await browser?.close();
});

/** Every /auth/* request of a browser context, with its answer, for counting refreshes. */
function watch(context: BrowserContext) {
  const seen: { page: string; method: string; path: string; status: number; body: string; sent: string }[] = [];
  const bodies: Promise<void>[] = [];
  context.on("response", (response) => {
    const url = new URL(response.url());
    if (!url.pathname.startsWith("/auth/")) return;
    const entry = {
      page: response.frame().page()?.url() ?? "",
      method: response.request().method(),
      path: url.pathname,
      status: response.status(),
      body: "",
      sent: response.request().postData() ?? "",
    };
    seen.push(entry); // at once, in order; the body follows
    bodies.push(response.text().then((text) => void (entry.body = text), () => undefined));
  });
  return {
    seen,
    /** Waits for the bodies of the responses seen so far. */
    settled: () => Promise.all(bodies),
    count: (path: string, status?: number) =>
      seen.filter((s) => s.method !== "OPTIONS" && s.path === path && (status === undefined || s.status === status)).length,
  };
}

async function openDemo(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`# page error: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

async function signUp(page: Page, username: string, password = PASSWORD) {
  await page.fill("#signup-username", username);
  await page.fill("#signup-password", password);
  await page.click("#signup-button");
  await page.waitForSelector(`#status[data-state=in]`);
}

async function logIn(page: Page, username: string, password: string) {
  await page.fill("#login-username", username);
  await page.fill("#login-password", password);
  await page.click("#login-button");
}

/** The page's own stored access token (through the client the demo exposes as window.tollgate). */
function storedTokens(page: Page) {
  return page.evaluate(async () => {
    const client = (window as unknown as { tollgate: { getTokens(): Promise<{ accessToken: string; expiresAt?: number } | null> } }).tollgate;
    return client.getTokens();
  });
}

/** Waits until the page's access token has expired by the page's clock (so the next call must refresh). */
async function waitForExpiry(page: Page) {
  const tokens = await storedTokens(page);
  assert.ok(tokens?.expiresAt, "logged in");
  const ms = (tokens.expiresAt - Date.now() / 1000) * 1000 + 150;
  if (ms > 0) await page.waitForTimeout(ms);
}

/** Clicks "Show /auth/me" in every page at the same instant (scheduled in each page, not one after another). */
async function clickMeTogether(pages: Page[]) {
  const at = Date.now() + 300;
  await Promise.all(
    pages.map((page) =>
      page.evaluate((when) => {
        document.getElementById("me-output")!.textContent = "";
        setTimeout(() => document.getElementById("me-button")!.click(), when - Date.now());
      }, at),
    ),
  );
  await Promise.all(pages.map((page) => page.waitForFunction(() => document.getElementById("me-output")!.textContent!.includes('"username"'))));
}

async function serverAccepts(server: Tollgate, accessToken: string): Promise<number> {
  return (await fetch(`${server.url}/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status;
}

describe("demo page, body mode (localStorage)", () => {
  let server: Tollgate;
  before(async () => {
    server = await startTollgate(DEMO_ENV);
  });
  after(async () => {
    await server?.stop();
  });

  test("sign up, log in, /auth/me, refresh, log out, and the server's error message on a wrong password", async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
    const traffic = watch(context);
    const page = await openDemo(context, `${server.url}/demo`);
    assert.equal(await page.textContent("#status"), "Not logged in");

    const username = uniqueName("alice");
    await signUp(page, username);
    assert.equal(await page.textContent("#status"), `Logged in as ${username}`);

    await page.click("#me-button");
    await page.waitForFunction(() => document.getElementById("me-output")!.textContent!.includes("created_at"));
    const me = JSON.parse((await page.textContent("#me-output"))!) as { username: string };
    assert.equal(me.username, username);

    const before = await storedTokens(page);
    const refreshes = traffic.count("/auth/refresh", 200);
    await page.click("#refresh-button");
    await page.waitForFunction(() => document.getElementById("message")!.textContent === "Tokens refreshed.");
    const afterRefresh = await storedTokens(page);
    assert.notEqual(afterRefresh?.accessToken, before?.accessToken);
    assert.equal(traffic.count("/auth/refresh", 200), refreshes + 1);

    await page.click("#logout-button");
    await page.waitForSelector("#status[data-state=out]");
    assert.equal(await page.evaluate(() => localStorage.getItem("tollgate.tokens")), null);
    assert.equal(traffic.count("/auth/logout", 204), 1);

    // Wrong password: the server's message is shown, nothing is stored.
    await logIn(page, username, "not the password");
    await page.waitForFunction(() => document.getElementById("error")!.textContent !== "");
    const error = await page.textContent("#error");
    await traffic.settled();
    const serverError = traffic.seen.find((s) => s.path === "/auth/login" && s.status === 401);
    assert.ok(serverError, "the server answered 401");
    const { error: message } = JSON.parse(serverError.body) as { error: string };
    assert.equal(error, `${message} (invalid_credentials)`);
    assert.equal(await page.getAttribute("#error", "data-code"), "invalid_credentials");
    assert.equal(await page.textContent("#status"), "Not logged in");
    await page.screenshot({ path: join(RESULTS, "demo-wrong-password.png"), fullPage: true });

    // A validation error on signup shows too.
    await page.fill("#signup-username", "x");
    await page.fill("#signup-password", "short");
    await page.click("#signup-button");
    await page.waitForFunction(() => document.getElementById("error")!.dataset.code === "validation_failed");

    // And the right password logs in; the screenshot shows the demo logged in.
    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#status[data-state=in]");
    await page.click("#me-button");
    await page.waitForFunction(() => document.getElementById("me-output")!.textContent!.includes("created_at"));
    await page.screenshot({ path: join(RESULTS, "demo-logged-in.png"), fullPage: true });
    await context.close();
  });

  for (const variant of ["Web Locks", "BroadcastChannel (no Web Locks)"] as const) {
    test(`two tabs refreshing at the same moment share one refresh and stay logged in: ${variant}`, async () => {
      const context = await browser.newContext();
      if (variant !== "Web Locks") {
        // An older browser: hide navigator.locks so the client falls back to BroadcastChannel.
        await context.addInitScript(() => Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }));
      }
      const traffic = watch(context);
      const tabA = await openDemo(context, `${server.url}/demo`);
      assert.equal(await tabA.evaluate(() => typeof navigator.locks), variant === "Web Locks" ? "object" : "undefined");
      const username = uniqueName("tabs");
      await signUp(tabA, username);
      const tabB = await openDemo(context, `${server.url}/demo`);
      assert.equal(await tabB.textContent("#status"), `Logged in as ${username}`, "tab B shares the session");

      await waitForExpiry(tabA);
      const expired = (await storedTokens(tabA))!.accessToken;
      await clickMeTogether([tabA, tabB]);

      assert.equal(traffic.count("/auth/refresh"), 1, `one refresh for both tabs: ${JSON.stringify(traffic.seen.filter((x) => x.path === "/auth/refresh"))}`);
      assert.equal(traffic.count("/auth/refresh", 200), 1);
      assert.equal(traffic.count("/auth/me", 401), 0);
      for (const tab of [tabA, tabB]) {
        assert.equal(await tab.textContent("#status"), `Logged in as ${username}`);
        assert.equal(await tab.textContent("#error"), "");
        const tokens = (await storedTokens(tab))!;
        assert.notEqual(tokens.accessToken, expired);
        assert.equal(await serverAccepts(server, tokens.accessToken), 200, "the server accepts the tab's token");
      }
      // The session is intact on the server: a further refresh from either tab works.
      await tabB.click("#refresh-button");
      await tabB.waitForFunction(() => document.getElementById("message")!.textContent === "Tokens refreshed.");
      assert.equal(traffic.count("/auth/refresh", 401), 0);
      await context.close();
    });
  }
});

describe("demo page, sessions (SESSIONS_PER_USER=3)", () => {
  let server: Tollgate;
  before(async () => {
    server = await startTollgate({ ...DEMO_ENV, SESSIONS_PER_USER: "3", ACCESS_TOKEN_TTL_SECS: "300" });
  });
  after(async () => {
    await server?.stop();
  });

  /** The session ids the page lists, with the current one marked "*". */
  function listed(page: Page) {
    return page.$$eval("#sessions-list li", (items) => items.map((li) => `${li.classList.contains("current") ? "*" : ""}${li.dataset.sessionId}`));
  }
  async function waitForListed(page: Page, count: number) {
    await page.waitForFunction((n) => document.querySelectorAll("#sessions-list li[data-session-id]").length === n, count);
  }
  const sid = async (page: Page) => decodeJwtPayload((await storedTokens(page))!.accessToken)!.sid as string;

  test("the session list: sign out another device, all other devices, then this one", async () => {
    // Three browsers (separate storage), one user.
    const contexts = await Promise.all([0, 1, 2].map(() => browser.newContext({ viewport: { width: 900, height: 1000 } })));
    const [laptop, phone, tablet] = await Promise.all(contexts.map((c) => openDemo(c, `${server.url}/demo`)));
    const username = uniqueName("devices");
    await signUp(laptop!, username);
    await waitForListed(laptop!, 1);
    for (const page of [phone!, tablet!]) {
      await logIn(page, username, PASSWORD);
      await page.waitForSelector("#status[data-state=in]");
    }
    await waitForListed(tablet!, 3);
    assert.deepEqual((await listed(tablet!)).filter((id) => id.startsWith("*")), [`*${await sid(tablet!)}`]);

    await laptop!.click("#sessions-button");
    await waitForListed(laptop!, 3);
    const [laptopSid, phoneSid, tabletSid] = [await sid(laptop!), await sid(phone!), await sid(tablet!)];
    assert.deepEqual((await listed(laptop!)).sort(), [`*${laptopSid}`, phoneSid, tabletSid].sort());
    await laptop!.screenshot({ path: join(RESULTS, "demo-sessions.png"), fullPage: true });

    // Sign the phone out: its token is refused at once, and the list refreshes.
    const phoneToken = (await storedTokens(phone!))!.accessToken;
    assert.equal(await serverAccepts(server, phoneToken), 200);
    await laptop!.click(`#sessions-list li[data-session-id="${phoneSid}"] button`);
    await waitForListed(laptop!, 2);
    assert.equal(await laptop!.textContent("#message"), "Signed that session out.");
    assert.equal(await serverAccepts(server, phoneToken), 401);
    // The phone finds out on its next call: its refresh token is dead too.
    await phone!.click("#sessions-button");
    await phone!.waitForSelector("#status[data-state=out]");

    // All other sessions: the tablet's.
    const tabletToken = (await storedTokens(tablet!))!.accessToken;
    await laptop!.click("#logout-others-button");
    await laptop!.waitForFunction(() => document.getElementById("message")!.textContent === "Signed out all other sessions.");
    await waitForListed(laptop!, 1);
    assert.deepEqual(await listed(laptop!), [`*${laptopSid}`]);
    assert.equal(await serverAccepts(server, tabletToken), 401);
    assert.equal(await laptop!.textContent("#status"), `Logged in as ${username}`);

    // This device's own "sign out" is a logout.
    const laptopToken = (await storedTokens(laptop!))!.accessToken;
    await laptop!.click(`#sessions-list li[data-session-id="${laptopSid}"] button`);
    await laptop!.waitForSelector("#status[data-state=out]");
    assert.equal(await laptop!.evaluate(() => localStorage.getItem("tollgate.tokens")), null);
    assert.equal(await serverAccepts(server, laptopToken), 401);
    assert.equal(await laptop!.textContent("#error"), "");
    await Promise.all(contexts.map((c) => c.close()));
  });
});

describe("demo page, second factor (TOTP)", () => {
  let server: Tollgate;
  before(async () => {
    server = await startTollgate(DEMO_ENV);
  });
  after(async () => {
    await server?.stop();
  });

  /** What the QR code on the page says, read from the canvas's pixels by `qr`'s decoder (not the encoder the page uses). */
  async function readQr(page: Page): Promise<string> {
    const image = await page.evaluate(() => {
      // The canvas holds one pixel per module; scale it up (no smoothing) as a camera would see it.
      const source = document.getElementById("totp-qr") as HTMLCanvasElement;
      const scale = 8;
      const big = document.createElement("canvas");
      big.width = source.width * scale;
      big.height = source.height * scale;
      const context = big.getContext("2d")!;
      context.imageSmoothingEnabled = false;
      context.drawImage(source, 0, 0, big.width, big.height);
      const data = context.getImageData(0, 0, big.width, big.height);
      return { width: data.width, height: data.height, data: Array.from(data.data) };
    });
    return decodeQR({ width: image.width, height: image.height, data: Uint8Array.from(image.data) });
  }

  const messageIs = (page: Page, text: string) =>
    page.waitForFunction((t) => document.getElementById("message")!.textContent === t, text);
  const errorCodeIs = (page: Page, code: string) =>
    page.waitForFunction((c) => document.getElementById("error")!.dataset.code === c && document.getElementById("error")!.textContent !== "", code);
  const amrShown = (page: Page) => page.getAttribute("#amr", "data-amr");

  test("enrol with the QR code, sign in with the second step, recovery codes, turn it off", async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 1100 } });
    const traffic = watch(context);
    const page = await openDemo(context, `${server.url}/demo`);
    const username = uniqueName("totp");
    await signUp(page, username);
    assert.equal(await page.getAttribute("#mfa", "data-state"), "off");
    assert.equal(await page.isVisible("#totp-manage-form"), false);
    assert.equal(await amrShown(page), "pwd");

    // Set up: a wrong password is the server's error; the right one shows the QR code and the secret.
    await page.fill("#totp-password", "not the password");
    await page.click("#totp-setup-button");
    await errorCodeIs(page, "invalid_credentials");
    assert.equal(await page.isVisible("#totp-enrol"), false);
    await page.fill("#totp-password", PASSWORD);
    await page.click("#totp-setup-button");
    await page.waitForSelector("#totp-enrol", { state: "visible" });
    const secret = (await page.textContent("#totp-secret"))!;
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    const uri = await readQr(page);
    await traffic.settled();
    const served = traffic.seen.find((s) => s.path === "/auth/mfa/totp/setup" && s.status === 200)!;
    assert.equal(uri, (JSON.parse(served.body) as { otpauth_uri: string }).otpauth_uri, "the QR code holds the server's otpauth URI");
    const parsed = new URL(uri);
    assert.equal(parsed.protocol, "otpauth:");
    assert.equal(parsed.searchParams.get("secret"), secret, "the secret shown is the QR code's");
    assert.ok(decodeURIComponent(parsed.pathname).endsWith(`:${username}`), uri);
    await page.screenshot({ path: join(RESULTS, "demo-mfa-setup.png"), fullPage: true });

    // Confirm: a wrong code is refused; the app's code turns it on and shows the recovery codes once.
    const app = new Authenticator(secret);
    await page.fill("#totp-confirm-code", app.wrongCode());
    await page.click("#totp-confirm-button");
    await errorCodeIs(page, "invalid_mfa_code");
    await page.fill("#totp-confirm-code", await app.code());
    await page.click("#totp-confirm-button");
    await messageIs(page, "Two-factor sign-in is on.");
    assert.equal(await page.getAttribute("#mfa", "data-state"), "on");
    assert.equal(await page.isVisible("#totp-enrol"), false);
    const recoveryCodes = await page.$$eval("#recovery-list li", (items) => items.map((li) => li.textContent!));
    assert.equal(recoveryCodes.length, 10);
    assert.equal(new Set(recoveryCodes).size, 10);
    await page.screenshot({ path: join(RESULTS, "demo-mfa-recovery-codes.png"), fullPage: true });
    await page.click("#recovery-done");
    assert.equal(await page.isVisible("#recovery"), false);
    assert.equal(await page.$$eval("#recovery-list li", (items) => items.length), 0, "gone from the page");

    // Log out and in: the password step asks for the code, and stores nothing yet.
    await page.click("#logout-button");
    await page.waitForSelector("#status[data-state=out]");
    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#mfa-form", { state: "visible" });
    assert.equal(await page.isVisible("#login-form"), false);
    assert.equal(await page.textContent("#status"), "Not logged in");
    assert.equal(await page.evaluate(() => localStorage.getItem("tollgate.tokens")), null);
    await page.screenshot({ path: join(RESULTS, "demo-mfa-login.png"), fullPage: true });
    // A wrong code: the server's error, and the code is asked for again.
    await page.fill("#mfa-code", app.wrongCode());
    await page.click("#mfa-button");
    await errorCodeIs(page, "invalid_mfa_code");
    assert.equal(await page.isVisible("#mfa-form"), true);
    // The app's next code signs in, with two factors.
    await page.fill("#mfa-code", await app.code());
    await page.click("#mfa-button");
    await page.waitForSelector("#status[data-state=in]");
    assert.equal(await page.textContent("#status"), `Logged in as ${username}`);
    assert.equal(await amrShown(page), "mfa otp pwd");
    assert.deepEqual(decodeJwtPayload((await storedTokens(page))!.accessToken)!.amr, ["mfa", "otp", "pwd"]);
    assert.equal(await page.getAttribute("#mfa", "data-state"), "on");
    assert.equal(await page.isVisible("#mfa-form"), false);

    // A recovery code signs in too (log out first).
    await page.click("#logout-button");
    await page.waitForSelector("#status[data-state=out]");
    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#mfa-form", { state: "visible" });
    await page.fill("#mfa-code", recoveryCodes[0]!);
    await page.click("#mfa-button");
    await page.waitForSelector("#status[data-state=in]");
    assert.equal(await amrShown(page), "mfa otp pwd");

    // New recovery codes (with an old one), then turn it off with one of the new ones.
    await page.fill("#totp-manage-code", recoveryCodes[1]!);
    await page.click("#recovery-new-button");
    await messageIs(page, "New recovery codes: the old ones no longer work.");
    const fresh = await page.$$eval("#recovery-list li", (items) => items.map((li) => li.textContent!));
    assert.equal(fresh.length, 10);
    assert.equal(fresh.some((code) => recoveryCodes.includes(code)), false);
    await page.fill("#totp-manage-code", recoveryCodes[2]!);
    await page.click("#totp-disable-button");
    await errorCodeIs(page, "invalid_mfa_code"); // the old set no longer works
    assert.equal(await page.getAttribute("#mfa", "data-state"), "on");
    await page.fill("#totp-manage-code", fresh[0]!);
    await page.click("#totp-disable-button");
    await messageIs(page, "Two-factor sign-in is off.");
    assert.equal(await page.getAttribute("#mfa", "data-state"), "off");
    assert.equal(await page.isVisible("#totp-setup-form"), true);

    // One step again.
    await page.click("#logout-button");
    await page.waitForSelector("#status[data-state=out]");
    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#status[data-state=in]");
    assert.equal(await amrShown(page), "pwd");
    assert.equal(traffic.count("/auth/login/mfa", 200), 2);
    await context.close();
  });

  test("the code prompt: cancel goes back to the password; a dead mfa_token asks for the password again", async () => {
    const context = await browser.newContext();
    const page = await openDemo(context, `${server.url}/demo`);
    const username = uniqueName("prompt");
    await signUp(page, username);
    await page.fill("#totp-password", PASSWORD);
    await page.click("#totp-setup-button");
    await page.waitForSelector("#totp-enrol", { state: "visible" });
    const app = new Authenticator((await page.textContent("#totp-secret"))!);
    await page.fill("#totp-confirm-code", await app.code());
    await page.click("#totp-confirm-button");
    await messageIs(page, "Two-factor sign-in is on.");
    await page.click("#logout-button");
    await page.waitForSelector("#status[data-state=out]");

    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#mfa-form", { state: "visible" });
    await page.click("#mfa-cancel");
    await page.waitForSelector("#login-form", { state: "visible" });
    assert.equal(await page.isVisible("#mfa-form"), false);

    // Five wrong codes: the sixth try finds the mfa_token dead, and the page asks for the password.
    await logIn(page, username, PASSWORD);
    await page.waitForSelector("#mfa-form", { state: "visible" });
    for (let i = 0; i < 5; i++) {
      await page.fill("#mfa-code", app.wrongCode());
      await page.click("#mfa-button");
      await page.waitForFunction(() => document.getElementById("error")!.dataset.code === "invalid_mfa_code");
      await page.evaluate(() => delete document.getElementById("error")!.dataset.code);
    }
    await page.fill("#mfa-code", await app.code());
    await page.click("#mfa-button");
    await errorCodeIs(page, "invalid_mfa_token");
    await page.waitForSelector("#login-form", { state: "visible" });
    assert.equal(await page.textContent("#status"), "Not logged in");
    await context.close();
  });
});

describe("demo page, cookie mode (REFRESH_TOKEN_COOKIE=true)", () => {
  let server: Tollgate;
  let attacker: Server;
  let attackerUrl = "";
  let cookieMode = false;

  before(async () => {
    server = await startTollgate((port) => ({
      ...DEMO_ENV,
      REFRESH_TOKEN_COOKIE: "true",
      CORS_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
    }));
    cookieMode = await supportsCookieMode(server, server.url);
    if (!cookieMode) console.log("# SKIP: this tollgate has no cookie mode (REFRESH_TOKEN_COOKIE) yet");
    // Another origin (same host, other port: same *site*, so SameSite=Strict still sends the
    // cookie and tollgate's own Origin + CSRF-header check is what must refuse it).
    const port = await freePort();
    attackerUrl = `http://127.0.0.1:${port}`;
    attacker = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>elsewhere</title><p>another site</p>");
    });
    await new Promise<void>((done) => attacker.listen(port, "127.0.0.1", done));
  });
  after(async () => {
    await server?.stop();
    if (attacker) await new Promise((done) => attacker.close(done)); // absent if start-up failed
  });

  test("the refresh token never reaches script; reload keeps the session; two tabs refresh at once", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
    const traffic = watch(context);
    const tabA = await openDemo(context, `${server.url}/demo?mode=cookie`);
    const username = uniqueName("cookie");
    await signUp(tabA, username);

    const cookies = await context.cookies();
    const refresh = cookies.find((c) => c.name === "tollgate_refresh");
    assert.ok(refresh, "the browser holds the refresh cookie");
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.secure, true);
    assert.equal(refresh.sameSite, "Strict");
    assert.equal(refresh.path, "/auth");
    const visible = await tabA.evaluate(async () => ({
      cookie: document.cookie,
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      tokens: JSON.stringify(await (window as unknown as { tollgate: { getTokens(): Promise<unknown> } }).tollgate.getTokens()),
    }));
    for (const [where, text] of Object.entries(visible)) {
      assert.equal(text.includes(refresh.value), false, `refresh token visible in ${where}`);
      assert.equal(text.includes("tgr_"), false, `a refresh token in ${where}`);
    }
    await traffic.settled();
    for (const response of traffic.seen) {
      assert.equal(response.body.includes('"refresh_token":'), false, `refresh_token in the JSON of ${response.path}`);
      assert.equal(response.body.includes(refresh.value), false, `the cookie's value in ${response.path}`);
    }

    await tabA.click("#me-button");
    await tabA.waitForFunction(() => document.getElementById("me-output")!.textContent!.includes("created_at"));

    // A reload (or a new tab) has no access token: the demo trades the cookie for one.
    await tabA.reload();
    await tabA.waitForSelector("body[data-ready=true]");
    assert.equal(await tabA.textContent("#status"), `Logged in as ${username}`);
    const tabB = await openDemo(context, `${server.url}/demo?mode=cookie`);
    assert.equal(await tabB.textContent("#status"), `Logged in as ${username}`);

    // Both access tokens expire; both tabs call at once. Each tab keeps its access token in
    // memory, so each refreshes, but one after the other (Web Locks) with the current cookie.
    await waitForExpiry(tabA);
    await waitForExpiry(tabB);
    const mark = traffic.seen.length;
    await clickMeTogether([tabA, tabB]);
    const during = traffic.seen.slice(mark).filter((s) => s.method !== "OPTIONS");
    assert.ok(during.some((s) => s.path === "/auth/refresh" && s.status === 200), "refreshed");
    assert.deepEqual(during.filter((s) => s.status !== 200), [], "no refused request");
    for (const tab of [tabA, tabB]) {
      assert.equal(await tab.textContent("#status"), `Logged in as ${username}`);
      assert.equal(await serverAccepts(server, (await storedTokens(tab))!.accessToken), 200);
    }
    await tabA.screenshot({ path: join(RESULTS, "demo-cookie-mode.png"), fullPage: true });

    // Log out: the cookie is cleared and a reload is logged out.
    await tabA.click("#logout-button");
    await tabA.waitForSelector("#status[data-state=out]");
    const left = (await context.cookies()).find((c) => c.name === "tollgate_refresh");
    assert.ok(!left || left.value === "", "logout cleared the cookie");
    await tabB.reload();
    await tabB.waitForSelector("body[data-ready=true]");
    assert.equal(await tabB.textContent("#status"), "Not logged in");
    await context.close();
  });

  test("the plain /demo page notices the server's cookie mode and switches to it", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const context = await browser.newContext();
    const page = await openDemo(context, `${server.url}/demo`);
    const username = uniqueName("switch");
    await page.fill("#signup-username", username);
    await page.fill("#signup-password", PASSWORD);
    await page.click("#signup-button");
    await page.waitForURL(/mode=cookie/);
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.textContent("#status"), `Logged in as ${username}`);
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing left in localStorage");
    await context.close();
  });

  test("a page on another origin cannot use the refresh cookie", async (t) => {
    if (!cookieMode) return t.skip("no cookie mode on this server");
    const context = await browser.newContext();
    const victim = await openDemo(context, `${server.url}/demo?mode=cookie`);
    const username = uniqueName("victim");
    await signUp(victim, username);
    const cookieBefore = (await context.cookies()).find((c) => c.name === "tollgate_refresh")!.value;

    const evil = await context.newPage();
    // Ask Chromium itself what tollgate answered: CORS hides it from the page (and from
    // Playwright's response events), but the DevTools protocol still reports raw statuses.
    const cdp = await context.newCDPSession(evil);
    await cdp.send("Network.enable");
    // (The two events of one request may come in either order: join them by request id.)
    const sent = new Map<string, { method: string; url: string }>();
    const statuses = new Map<string, number>();
    cdp.on("Network.requestWillBeSent", (e) => sent.set(e.requestId, { method: e.request.method, url: e.request.url }));
    cdp.on("Network.responseReceivedExtraInfo", (e) => statuses.set(e.requestId, e.statusCode));
    const answered = () =>
      [...statuses].flatMap(([id, status]) => {
        const request = sent.get(id);
        return request ? [{ method: request.method, path: new URL(request.url).pathname, status }] : [];
      });
    await evil.goto(`${attackerUrl}/`);
    const outcome = await evil.evaluate(async (target) => {
      const attempt = async (init: RequestInit) => {
        try {
          const response = await fetch(`${target}/auth/refresh`, { method: "POST", credentials: "include", ...init });
          return `read ${response.status}: ${await response.text()}`;
        } catch (e) {
          return `blocked: ${(e as Error).name}`;
        }
      };
      return {
        // A "simple" request: no preflight, so it reaches tollgate with the cookie.
        simple: await attempt({ headers: { "content-type": "text/plain" }, body: "{}" }),
        // With the CSRF header: the preflight fails, the POST is never sent.
        withHeader: await attempt({ headers: { "content-type": "application/json", "x-tollgate-csrf": "1" }, body: "{}" }),
        // Even a form-like no-cors request gets nothing readable.
        noCors: await fetch(`${target}/auth/refresh`, { method: "POST", mode: "no-cors", credentials: "include", body: "{}" })
          .then((r) => `opaque ${r.type} ${r.status}`, (e: Error) => `blocked: ${e.name}`),
      };
    }, server.url);
    assert.match(outcome.simple, /^blocked/, "CORS keeps the answer from the other origin");
    assert.match(outcome.withHeader, /^blocked/);
    assert.equal(outcome.noCors, "opaque opaque 0", "no-cors: an opaque answer, nothing readable");

    // The "simple" and the no-cors request did reach tollgate with the cookie (SameSite does not
    // separate two ports of one host) and were refused by its CSRF check with a 403; the one with
    // the CSRF header never got past the preflight.
    const refreshPosts = () => answered().filter((a) => a.path === "/auth/refresh" && a.method === "POST");
    for (let i = 0; i < 50 && refreshPosts().length < 2; i++) await evil.waitForTimeout(100); // events trail the page
    const posts = refreshPosts().map((a) => a.status);
    assert.deepEqual(posts, [403, 403], `tollgate's answers: ${JSON.stringify(answered())}`);
    const cookieAfter = (await context.cookies()).find((c) => c.name === "tollgate_refresh")!.value;
    assert.equal(cookieAfter, cookieBefore, "the cookie was not rotated by the other origin");

    // The victim's session is untouched.
    await victim.click("#refresh-button");
    await victim.waitForFunction(() => document.getElementById("message")!.textContent === "Tokens refreshed.");
    assert.equal(await victim.textContent("#status"), `Logged in as ${username}`);
    await context.close();
  });
});
