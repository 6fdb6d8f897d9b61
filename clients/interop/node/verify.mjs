// Node: openid-client finds the issuer by its URL through both discovery documents, then
// jose verifies a tollgate access token with the JWKS named there
// (createRemoteJWKSet + jwtVerify), as a Node resource server would.
// Environment: TOLLGATE_URL (= JWT_ISSUER), AUDIENCE, ALG, ACCESS_TOKEN.
// Prints one "PASS name" or "FAIL name: why" line per check; exits 1 on any failure.
import * as jose from "jose";
import * as client from "openid-client";

const { TOLLGATE_URL, AUDIENCE, ALG, ACCESS_TOKEN } = process.env;
const issuer = new URL(TOLLGATE_URL);
let failed = false;

async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e?.code ?? ""} ${e?.message ?? e}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

let jwksUri;
for (const algorithm of ["oidc", "oauth2"]) {
  await check(`openid-client discovery (${algorithm})`, async () => {
    // Plain http on the loopback only: production issuers are https.
    const config = await client.discovery(issuer, "interop-test", undefined, undefined, {
      algorithm,
      execute: [client.allowInsecureRequests],
    });
    const metadata = config.serverMetadata();
    expect(metadata.issuer === TOLLGATE_URL, `issuer ${metadata.issuer}`);
    expect(metadata.id_token_signing_alg_values_supported?.includes(ALG), `algs of ${JSON.stringify(metadata)}`);
    jwksUri = new URL(metadata.jwks_uri);
  });
}

await check("jose createRemoteJWKSet + jwtVerify", async () => {
  expect(jwksUri, "no jwks_uri discovered");
  const jwks = jose.createRemoteJWKSet(jwksUri);
  const { payload, protectedHeader } = await jose.jwtVerify(ACCESS_TOKEN, jwks, {
    issuer: TOLLGATE_URL,
    audience: AUDIENCE,
    algorithms: [ALG],
    typ: "at+jwt",
  });
  expect(protectedHeader.alg === ALG, `alg ${protectedHeader.alg}`);
  expect(typeof payload.sub === "string" && payload.username === "interop", JSON.stringify(payload));
});

await check("jose rejects a tampered token", async () => {
  const jwks = jose.createRemoteJWKSet(jwksUri);
  const [header, payload] = ACCESS_TOKEN.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url"));
  const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, username: "mallory" })).toString("base64url")}.${ACCESS_TOKEN.split(".")[2]}`;
  const outcome = await jose.jwtVerify(forged, jwks, { issuer: TOLLGATE_URL, audience: AUDIENCE }).then(
    () => "accepted",
    (e) => e.code,
  );
  expect(outcome === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", `outcome ${outcome}`);
});

process.exit(failed ? 1 : 0);
