// The user's authenticator app, for the tests: TOTP codes (RFC 6238: HMAC-SHA1, 6 digits,
// 30 s steps, RFC 4226's dynamic truncation) of a base32 secret, computed with node:crypto,
// and enrolment of an account through the client.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { TollgateClient } from "tollgate-client";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
export const STEP_SECS = 30;

/** RFC 4648 base32 (case-insensitive, padding and spaces ignored) to bytes. */
export function base32Decode(text: string): Buffer {
  const bytes: number[] = [];
  let value = 0;
  let bits = 0;
  for (const ch of text.toUpperCase().replace(/[=\s]/g, "")) {
    const digit = BASE32.indexOf(ch);
    if (digit < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = (value << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
    value &= (1 << bits) - 1;
  }
  return Buffer.from(bytes);
}

/** The 6-digit code of `step` (unix seconds / 30) for the secret. */
export function totp(secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

export const currentStep = () => Math.floor(Date.now() / 1000 / STEP_SECS);

/**
 * An authenticator app that remembers the last step whose code it handed out. tollgate accepts
 * a code of the current step or one either side, and never a step at or before the last one it
 * accepted (replay): `code()` gives the code of the earliest step after the last one that is
 * still at most one step ahead of now, i.e. two codes per 30 s window (now's, then the next
 * step's). Only a third within one window has to wait for the clock to reach the next step
 * (waited for by watching the clock, never a fixed sleep); the tests are laid out to avoid it.
 */
export class Authenticator {
  readonly key: Buffer;
  private last = -Infinity;

  constructor(readonly secret: string) {
    this.key = base32Decode(secret);
  }

  async code(): Promise<string> {
    for (;;) {
      const now = currentStep();
      const step = Math.max(this.last + 1, now);
      if (step <= now + 1) {
        this.last = step;
        return totp(this.key, step);
      }
      console.log("# waiting for the next TOTP step (more than two codes asked for in one 30 s window)");
      while (currentStep() === now) await new Promise((done) => setTimeout(done, 200));
    }
  }

  /** A 6-digit code that is none of the codes the server could accept around now. */
  wrongCode(): string {
    const now = currentStep();
    const valid = new Set(Array.from({ length: 7 }, (_, i) => totp(this.key, now - 3 + i)));
    for (let n = 0; ; n += 1) {
      const candidate = String((123456 + n * 7919) % 1_000_000).padStart(6, "0");
      if (!valid.has(candidate)) return candidate;
    }
  }
}

/** Sets up and confirms TOTP for the client's user: the app, the code that confirmed it and the ten recovery codes. */
export async function enrol(
  client: TollgateClient,
  password: string,
): Promise<{ app: Authenticator; confirmedWith: string; recoveryCodes: string[] }> {
  const setup = await client.setupTotp(password);
  const app = new Authenticator(setup.secret);
  const confirmedWith = await app.code();
  const recoveryCodes = await client.confirmTotp(confirmedWith);
  assert.equal(recoveryCodes.length, 10);
  return { app, confirmedWith, recoveryCodes };
}
