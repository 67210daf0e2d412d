// Drives the authority's RFC 7662 and RFC 7009 endpoints with openid-client, a client this project
// did not write. Input: ISSUER_URL (the authority's HTTP base), CLIENT_ID and CLIENT_SECRET (an API
// key's id and secret, sent as HTTP Basic), and ACTION with TOKEN. Output: one JSON line.
import * as client from 'openid-client';

const base = process.env.ISSUER_URL;
const config = new client.Configuration(
  {
    issuer: base,
    introspection_endpoint: base + '/oauth2/introspect',
    revocation_endpoint: base + '/oauth2/revoke',
  },
  process.env.CLIENT_ID,
  undefined,
  client.ClientSecretBasic(process.env.CLIENT_SECRET),
);
// The test server is plain HTTP on loopback.
client.allowInsecureRequests(config);

try {
  switch (process.env.ACTION) {
    case 'introspect': {
      const r = await client.tokenIntrospection(config, process.env.TOKEN);
      console.log(JSON.stringify(r));
      break;
    }
    case 'revoke':
      await client.tokenRevocation(config, process.env.TOKEN);
      console.log(JSON.stringify({ revoked: true }));
      break;
    default:
      throw new Error('unknown ACTION ' + process.env.ACTION);
  }
} catch (e) {
  console.log(JSON.stringify({ failed: e.name, code: e.code, error: e.error, status: e.status }));
  process.exitCode = 2;
}
