// Test helpers: a real tollgate process per test file, and a fetch that records requests.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoginResult, SessionStarted } from "tollgate-client";

/** clients/js (this file runs from clients/js/dist-test/test/). */
export const packageDir = resolve(fileURLToPath(new URL("../../", import.meta.url)));
export const repoDir = resolve(packageDir, "../..");

/** TOLLGATE_BIN, else $CARGO_TARGET_DIR/debug/tollgate, else target/debug/tollgate. */
function tollgatePath(): string {
  if (process.env.TOLLGATE_BIN) return resolve(process.env.TOLLGATE_BIN);
  const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repoDir, process.env.CARGO_TARGET_DIR) : join(repoDir, "target");
  return join(targetDir, "debug", "tollgate");
}

/**
 * Run once before any test (test/prepare.ts, from `npm test`), outside every test's
 * timeout: a first build takes minutes. Builds the debug binary unless TOLLGATE_BIN names
 * one; when it is up to date, cargo takes a second to say so.
 */
export function buildTollgate(): string {
  const binary = tollgatePath();
  if (process.env.TOLLGATE_BIN) {
    if (!existsSync(binary)) throw new Error(`TOLLGATE_BIN=${binary} does not exist`);
    return binary;
  }
  process.stderr.write(`# cargo build --bin tollgate (for ${binary})\n`);
  const built = spawnSync("cargo", ["build", "--bin", "tollgate"], { cwd: repoDir, stdio: ["ignore", 2, 2] });
  if (built.error && existsSync(binary)) {
    process.stderr.write(`# cargo could not run (${built.error.message}); testing the binary already there\n`);
  } else if (built.status !== 0) {
    throw new Error(`cargo build --bin tollgate failed${built.error ? `: ${built.error.message}` : ""}`);
  }
  return binary;
}

/** The binary under test; never built here, inside a test's timeout. */
export function tollgateBinary(): string {
  const binary = tollgatePath();
  if (!existsSync(binary)) {
    throw new Error(`${binary} does not exist: run the tests with \`npm test\` (which builds it first) or set TOLLGATE_BIN`);
  }
  return binary;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface Tollgate {
  url: string;
  port: number;
  /** What the server wrote to stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/** Starts tollgate on a free port with a fresh database and key directory; resolves once /readyz is 200. */
export async function startTollgate(
  env: Record<string, string> | ((port: number) => Record<string, string>) = {},
): Promise<Tollgate> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-js-"));
  const port = await freePort();
  const extra = typeof env === "function" ? env(port) : env;
  const child: ChildProcess = spawn(tollgateBinary(), [], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      BIND_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: `sqlite://${dir}/t.db`,
      JWT_KEYS_DIR: `${dir}/keys`,
      AUTH_RATE_LIMIT_PER_MIN: "0",
      ARGON2_MEMORY_KIB: "1024",
      ARGON2_ITERATIONS: "1",
      ACCESS_TOKEN_TTL_SECS: "2",
      JWT_LEEWAY_SECS: "0",
      RUST_LOG: "warn",
      ...extra,
    },
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let exited = false;
  const exit = new Promise<void>((done) => {
    child.once("exit", () => ((exited = true), done()));
    // A binary that cannot be started at all reports "error" (and no "exit").
    child.once("error", (e) => ((stderr += `${e.message}\n`), (exited = true), done()));
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`tollgate exited during start-up:\n${stderr}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`tollgate not ready within 60 s:\n${stderr}`);
    }
    await sleep(100);
  }
  return {
    url,
    port,
    log: () => stderr,
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      await Promise.race([exit, sleep(10_000)]);
      if (!exited) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The session of a login or reset that had no second step to take (fails the test otherwise). */
export function asSession(result: LoginResult): SessionStarted {
  if (result.kind !== "session") throw new Error(`expected a session, got ${JSON.stringify(result)}`);
  return result;
}

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export interface Call {
  method: string;
  path: string;
  status: number;
}

/** A fetch that records method, path and status of every request, to count refreshes. */
export function recordingFetch(inner: typeof fetch = fetch) {
  const calls: Call[] = [];
  const wrapped = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // Read method and URL without constructing a Request, which would consume a streamed body.
    const isRequest = input instanceof Request;
    const method = (init?.method ?? (isRequest ? input.method : "GET")).toUpperCase();
    const url = isRequest ? input.url : String(input);
    const response = await inner(input, init);
    calls.push({ method, path: new URL(url).pathname, status: response.status });
    return response;
  };
  return {
    fetch: wrapped,
    calls,
    count: (path: string, status?: number) =>
      calls.filter((c) => c.path === path && (status === undefined || c.status === status)).length,
    reset: () => void calls.splice(0),
  };
}

let counter = 0;
/** A username unique within this process (and across test files, thanks to the pid). */
export function uniqueName(prefix = "u"): string {
  counter += 1;
  return `${prefix}${process.pid}_${counter}`;
}

export const PASSWORD = "correct horse battery staple";

/** Whether this tollgate runs in cookie mode: a browser-like signup gets the refresh token as a cookie. */
export async function supportsCookieMode(server: Tollgate, origin: string): Promise<boolean> {
  const response = await fetch(`${server.url}/auth/signup`, {
    method: "POST",
    headers: { "content-type": "application/json", origin },
    body: JSON.stringify({ username: uniqueName("probe"), password: PASSWORD }),
  });
  const body = (await response.json()) as { refresh_token?: string };
  return response.status === 201 && !body.refresh_token && (response.headers.get("set-cookie") ?? "").includes("tollgate_refresh=");
}

/** A browser-like fetch: adds Origin, keeps a cookie jar, sends cookies only with credentials "include". */
export function browserFetch(origin: string) {
  const jar = new Map<string, string>();
  const fetchLike = async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set("origin", origin);
    if (init.credentials === "include" && jar.size > 0) {
      headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const response = await fetch(input, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(/;\s*/);
      const [name, value] = pair!.split("=", 2) as [string, string];
      if (!value || attributes.some((a) => /^max-age=0$/i.test(a))) jar.delete(name);
      else jar.set(name, value);
    }
    return response;
  };
  return { fetch: fetchLike, jar };
}
