// A real OpenID Connect provider on loopback for the sign-in tests: node's `oidc-provider`
// (OpenID Certified) with its development login form, the people in $OIDC_USERS, and one client.
//
//   node provider.mjs PORT REDIRECT_URI CLIENT_ID CLIENT_SECRET
//   OIDC_USERS='{"ana@team.example": {"email_verified": true, "name": "Ana"}, ...}'
//
// The login form takes a login (an email of $OIDC_USERS) and any password. Consent is granted
// at once (the test client is first-party). Prints "ready <issuer>" once it listens.
import Provider from 'oidc-provider';

const [port, redirectUri, clientId, clientSecret] = process.argv.slice(2);
const users = JSON.parse(process.env.OIDC_USERS || '{}');
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [redirectUri.replace(/\/oauth2callback$/, '/')],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  cookies: { keys: ['qwen-dash-test-oidc-cookie-key'] },
  // Put the email claims in the ID token, as Google and Keycloak do: st.user reads the ID token.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: user.email_verified !== false, name: user.name || id };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  ttl: { Session: 3600, Grant: 3600, Interaction: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
