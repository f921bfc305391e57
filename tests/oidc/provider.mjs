// A real OpenID Connect provider (the certified `oidc-provider` package) on 127.0.0.1 for the sign-in tests.
// Usage: node provider.mjs  with OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI in the environment.
// Prints "ready <issuer>" once it listens. Logins use the package's devInteractions (login + any password);
// only the two test accounts below exist: one in an allowed domain, one not.
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;

const ACCOUNTS = {
  'ana@example.com': { name: 'Ana Allowed', email: 'ana@example.com' },
  'mallory@elsewhere.test': { name: 'Mallory Outside', email: 'mallory@elsewhere.test' },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    // Streamlit's st.logout sends the browser to end_session with its redirect_uri as post_logout_redirect_uri
    post_logout_redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // the ID token carries the claims (Streamlit reads st.user from it)
  conformIdTokenClaims: false,
  cookies: { keys: ['faultline-test-provider-cookie-key'] },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name };
      },
    };
  },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
