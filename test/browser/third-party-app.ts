// A third-party web app on its own port, as a real public OAuth client would be: its page makes a PKCE pair
// in the browser (WebCrypto), sends the user to Keyfarm's authorize page, and its callback exchanges the code
// and calls /api/nostr cross-origin. Everything it learns is written into its page for the test to read.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ThirdPartyApp {
  origin: string;
  redirectUri: string;
  clientId: string;
  close(): Promise<void>;
}

const page = (title: string, body: string, script: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>${body}<script>${script}</script></body></html>`;

function startScript(keyfarm: string, clientId: string, scope: string): string {
  return `
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
document.getElementById('login').addEventListener('click', async () => {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem('oauth', JSON.stringify({ verifier, state }));
  const url = new URL('/api/oauth/authorize', ${JSON.stringify(keyfarm)});
  url.search = new URLSearchParams({
    response_type: 'code', client_id: ${JSON.stringify(clientId)}, redirect_uri: location.origin + '/callback',
    scope: ${JSON.stringify(scope)}, code_challenge: challenge, code_challenge_method: 'S256', state,
  }).toString();
  location.href = url.toString();
});`;
}

function callbackScript(keyfarm: string, clientId: string): string {
  return `
const KEYFARM = ${JSON.stringify(keyfarm)};
const show = (id, text) => { document.getElementById(id).textContent = text; };
let accessToken;
async function sign() {
  show('status', '');
  const res = await fetch(KEYFARM + '/api/nostr', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + accessToken, 'content-type': 'application/json' },
    body: JSON.stringify({ method: 'sign_event', params: [{ kind: 1, content: 'hello from the app', tags: [], created_at: Math.floor(Date.now() / 1000) }] }),
  });
  show('result', await res.text());
  show('status', String(res.status));
}
(async () => {
  const params = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem('oauth') || '{}');
  show('state-check', params.get('state') === saved.state ? 'state ok' : 'state mismatch');
  if (params.get('error')) { show('error', params.get('error')); return; }
  const res = await fetch(KEYFARM + '/api/oauth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'authorization_code', code: params.get('code'), client_id: ${JSON.stringify(clientId)},
      redirect_uri: location.origin + '/callback', code_verifier: saved.verifier }),
  });
  const tokens = await res.json();
  show('tokens', JSON.stringify(tokens));
  if (!res.ok) { show('error', tokens.error || String(res.status)); return; }
  accessToken = tokens.access_token;
  document.getElementById('sign').addEventListener('click', sign);
  await sign();
})().catch((err) => show('error', String(err)));`;
}

export async function startThirdPartyApp(
  keyfarm: string,
  opts: { clientId?: string; scope?: string } = {},
): Promise<ThirdPartyApp> {
  const clientId = opts.clientId ?? 'Pixel Notes';
  const scope = opts.scope ?? 'policy:social';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (path === '/') {
      res.end(
        page('Pixel Notes', '<button id="login">Log in with Keyfarm</button>', startScript(keyfarm, clientId, scope)),
      );
    } else if (path === '/callback') {
      res.end(
        page(
          'Pixel Notes: callback',
          '<p id="state-check"></p><p>Error: <span id="error"></span></p><p>Status: <span id="status"></span></p>' +
            '<pre id="result"></pre><pre id="tokens"></pre><button id="sign">Sign again</button>',
          callbackScript(keyfarm, clientId),
        ),
      );
    } else {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    clientId,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
