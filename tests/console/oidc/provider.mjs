// The OpenID Provider the console's OIDC sign-in is tested against: the certified
// oidc-provider package, configured here with one confidential client (the console) that
// must use PKCE, and its built-in login pages. A login name is the account; an account's
// email is its login name, vouched for (email_verified) by this provider.
import Provider from "oidc-provider";

const { OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI } = process.env;
const issuer = `http://127.0.0.1:${OIDC_PORT}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: OIDC_CLIENT_ID,
    client_secret: OIDC_CLIENT_SECRET,
    redirect_uris: [OIDC_REDIRECT_URI],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  // The console reads the email from the ID token.
  conformIdTokenClaims: false,
  cookies: { keys: [OIDC_CLIENT_SECRET] },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: sub, email_verified: true };
      },
    };
  },
});

provider.listen(Number(OIDC_PORT), "127.0.0.1", () => {
  console.log(`oidc-provider listening at ${issuer}`);
});
