// Test helpers for mail: a MailDev (the npm package, a development SMTP server with a REST
// API) per test file on free ports, and waiting for a message through its `GET /email`.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, packageDir, sleep } from "./server.js";

/** One message as MailDev's REST API returns it (the fields the tests read). */
export interface Mail {
  id: string;
  subject: string;
  from: { address: string; name: string }[];
  to: { address: string; name: string }[];
  /** The text/plain part, decoded. */
  text?: string;
  /** The text/html part, decoded. */
  html?: string;
}

export interface MailDev {
  /** The SMTP port, for tollgate's SMTP_URL. */
  smtpPort: number;
  /** Where the REST API is, e.g. http://127.0.0.1:PORT. */
  apiUrl: string;
  /** Every message received so far. */
  all(): Promise<Mail[]>;
  /**
   * The first message to `address` that matches `accept` and that no earlier call has
   * returned, as soon as MailDev has it; polls its API until then, failing after `timeoutMs`.
   */
  next(address: string, accept?: (mail: Mail) => boolean, timeoutMs?: number): Promise<Mail>;
  log(): string;
  stop(): Promise<void>;
}

/** How long a test waits for a mail: tollgate's outbox sends at once, and retries within 5 s. */
export const MAIL_WAIT_MS = 20_000;

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: "127.0.0.1", port }, () => (socket.destroy(), done(true)));
    socket.once("error", () => (socket.destroy(), done(false)));
  });
}

/** Starts MailDev on two free ports; resolves once both its SMTP port and its API answer. */
export async function startMaildev(): Promise<MailDev> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-maildev-"));
  const smtpPort = await freePort();
  let webPort = await freePort();
  while (webPort === smtpPort) webPort = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(packageDir, "node_modules", "maildev", "bin", "maildev"),
      "--smtp", String(smtpPort),
      "--web", String(webPort),
      "--ip", "127.0.0.1",
      "--web-ip", "127.0.0.1",
      "--mail-directory", dir,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const collect = (chunk: Buffer) => void (output += chunk.toString());
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let exited = false;
  const exit = new Promise<void>((done) => {
    child.once("exit", () => ((exited = true), done()));
    child.once("error", (e) => ((output += `${e.message}\n`), (exited = true), done()));
  });
  const apiUrl = `http://127.0.0.1:${webPort}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`maildev exited during start-up:\n${output}`);
    let ready = false;
    try {
      ready = (await fetch(`${apiUrl}/healthz`)).ok && (await listening(smtpPort));
    } catch {
      // not listening yet
    }
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`maildev not ready within 20 s:\n${output}`);
    }
    await sleep(100);
  }

  const all = async (): Promise<Mail[]> => {
    const response = await fetch(`${apiUrl}/email`);
    if (!response.ok) throw new Error(`maildev GET /email: ${response.status}`);
    return (await response.json()) as Mail[];
  };
  const returned = new Set<string>();
  const next = async (address: string, accept: (mail: Mail) => boolean = () => true, timeoutMs = MAIL_WAIT_MS) => {
    const until = Date.now() + timeoutMs;
    const wanted = address.toLowerCase();
    for (;;) {
      const found = (await all()).find(
        (mail) => !returned.has(mail.id) && mail.to.some((to) => to.address.toLowerCase() === wanted) && accept(mail),
      );
      if (found) {
        returned.add(found.id);
        return found;
      }
      if (Date.now() > until) {
        const seen = (await all()).map((m) => `${m.to.map((t) => t.address).join(",")}: ${m.subject}`);
        throw new Error(`no new mail to ${address} within ${timeoutMs} ms; maildev has:\n${seen.join("\n")}`);
      }
      await sleep(100);
    }
  };
  return {
    smtpPort,
    apiUrl,
    all,
    next,
    log: () => output,
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      await Promise.race([exit, sleep(10_000)]);
      if (!exited) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The environment that turns tollgate's mail on, pointed at `mail`. */
export function mailEnv(mail: MailDev): Record<string, string> {
  return { SMTP_URL: `smtp://127.0.0.1:${mail.smtpPort}`, MAIL_FROM: "tollgate <no-reply@example.com>" };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** HTML's character references, as a browser reads an attribute (`http:&#x2f;&#x2f;…`). */
function decodeHtml(html: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return html.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] !== "#") return named[ref.toLowerCase()] ?? whole;
    const code = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

/** The links to `base` + `?token=tgm_…` in a part of a mail (the HTML part as a browser reads it). */
function linksIn(part: string | undefined, base: string, html = false): string[] {
  if (!part) return [];
  const pattern = new RegExp(`${escapeRegExp(base)}\\?token=tgm_[A-Za-z0-9_-]+`, "g");
  return [...(html ? decodeHtml(part) : part).matchAll(pattern)].map((m) => m[0]);
}

/** Whether the mail carries a link to `base` (e.g. `${server.url}/auth/password/reset`). */
export function hasLink(mail: Mail, base: string): boolean {
  return linksIn(mail.text, base).length > 0 || linksIn(mail.html, base, true).length > 0;
}

/**
 * The token of the mail's link to `base`. Checks that both the text and the HTML part
 * carry that same one link.
 */
export function tokenOf(mail: Mail, base: string): string {
  const text = [...new Set(linksIn(mail.text, base))];
  const html = [...new Set(linksIn(mail.html, base, true))];
  if (text.length !== 1 || html.length !== 1 || text[0] !== html[0]) {
    throw new Error(
      `expected one link ${base}?token=tgm_… in both the text and the HTML part of "${mail.subject}"; ` +
        `text has ${JSON.stringify(text)}, html has ${JSON.stringify(html)}\n--- text:\n${mail.text}\n--- html:\n${mail.html}`,
    );
  }
  return new URL(text[0]!).searchParams.get("token")!;
}

/** Every `tgm_…` token anywhere in the mail (a notice must carry none). */
export function tokensIn(mail: Mail): string[] {
  return [...`${mail.text ?? ""}\n${decodeHtml(mail.html ?? "")}`.matchAll(/tgm_[A-Za-z0-9_-]+/g)].map((m) => m[0]);
}
