// Third-party verification: the npm `jose` library, given only the issuer's discovery URL,
// verifies an access token of the running service (createRemoteJWKSet + jwtVerify), and
// refuses the same token once one signature byte is changed.
// Usage: node jose-verify.mjs BASE_URL ALG   (the server runs with JWT_ISSUER=BASE_URL)
import { createRemoteJWKSet, jwtVerify } from "jose";

const [base, alg] = process.argv.slice(2);
if (!base || !alg) {
    console.error("usage: node jose-verify.mjs BASE_URL ALG");
    process.exit(2);
}

async function json(url, init) {
    const resp = await fetch(url, init);
    if (!resp.ok) throw new Error(`${url}: ${resp.status}`);
    return resp.json();
}

const meta = await json(`${base}/.well-known/openid-configuration`);
if (meta.issuer !== base) throw new Error(`issuer ${meta.issuer} != ${base}`);
const login = await json(`${base}/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "jywan@test.com", password: "test" }),
});
const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
const options = {
    issuer: meta.issuer,
    audience: "jwt-auth-clients",
    algorithms: [alg],
    typ: "at+jwt",
};
const { payload, protectedHeader } = await jwtVerify(login.access_token, jwks, options);
if (protectedHeader.alg !== alg || !protectedHeader.kid) {
    throw new Error(`unexpected header ${JSON.stringify(protectedHeader)}`);
}
const [h, p, s] = login.access_token.split(".");
const flipped = `${h}.${p}.${s[0] === "A" ? "B" : "A"}${s.slice(1)}`;
let refused = false;
try {
    await jwtVerify(flipped, jwks, options);
} catch {
    refused = true;
}
if (!refused) throw new Error("a tampered token verified");
console.log(`jose: ${alg} token of ${payload.sub} verified through ${meta.jwks_uri}; tampered copy refused`);
