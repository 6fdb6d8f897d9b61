// user.roles against a real tollgate that gives every signup DEFAULT_ROLES.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { TollgateClient, decodeJwtPayload, type User } from "tollgate-client";
import { PASSWORD, startTollgate, uniqueName, type Tollgate } from "./server.js";

let server: Tollgate;
before(async () => {
  server = await startTollgate({ DEFAULT_ROLES: "member,beta" });
});
after(async () => {
  await server?.stop();
});

test("user.roles is on the token response, the stored user and me(), sorted like the token", async () => {
  const client = new TollgateClient({ baseUrl: server.url });
  const response = await client.signup({ username: uniqueName("Roles"), password: PASSWORD });
  const roles: string[] = response.user.roles;
  assert.deepEqual(roles, ["beta", "member"]);
  assert.deepEqual(decodeJwtPayload(response.access_token)?.roles, ["beta", "member"]);
  assert.deepEqual((await client.getTokens())?.user?.roles, ["beta", "member"]);
  const me: User = await client.me();
  assert.deepEqual(me.roles, ["beta", "member"]);
});
