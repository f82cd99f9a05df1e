// A real OpenID Connect provider for the browser tests: panva's oidc-provider (certified by the
// OpenID Foundation), configured from the environment by tests/support/oidc.py:
//   OIDC_PORT, OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI,
//   OIDC_USERS: {"<login>": ["<group>", ...], ...}
// Its own development sign-in pages (devInteractions) take a login name and any password; the
// users and their groups are those of OIDC_USERS. Prints "ready" once it listens.
import Provider from "oidc-provider";

const env = process.env;
const users = JSON.parse(env.OIDC_USERS);

const provider = new Provider(env.OIDC_ISSUER, {
  clients: [
    {
      client_id: env.OIDC_CLIENT_ID,
      client_secret: env.OIDC_CLIENT_SECRET,
      redirect_uris: [env.OIDC_REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  pkce: { required: () => true },
  scopes: ["openid", "email", "profile", "groups"],
  claims: {
    openid: ["sub"],
    email: ["email"],
    profile: ["preferred_username"],
    groups: ["groups"],
  },
  // the groups in the ID token itself, as most providers can be set to do
  conformIdTokenClaims: false,
  cookies: { keys: ["orgsync-tests-only"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    if (!(id in users)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, preferred_username: id, groups: users[id] };
      },
    };
  },
});

const server = provider.listen(Number(env.OIDC_PORT), "127.0.0.1", () => {
  console.log("ready");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
