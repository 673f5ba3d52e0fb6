// The shell every page shares: head, the signed-in navigation (with its log-out form), footer. It links
// no operator tool (Bull Board, metrics): those are for operators, reached by their own URLs.
import type { FastifyReply } from 'fastify';
import { ASSET_URLS } from './assets.js';
import { html, type SafeHtml } from './html.js';

export interface SignedIn {
  email: string;
  /** The form token for this response's forms (log out included). */
  csrf: string;
}

export interface PageOptions {
  title: string;
  body: SafeHtml;
  /** Present on signed-in pages: shows the navigation. */
  user?: SignedIn;
  /** Path of the page, to mark its navigation link. */
  path?: string;
  /** Reload the page after this many seconds (a status that is still changing; no script needed). */
  refreshSeconds?: number;
}

const NAV: [string, string][] = [
  ['/account', 'Account'],
  ['/account/apps', 'Connected apps'],
  ['/account/policies', 'Policies'],
  ['/account/bunker', 'New bunker'],
  ['/account/nostrconnect', 'Nostr Connect'],
  ['/account/activity', 'Activity'],
  ['/teams', 'Teams'],
  ['/account/export', 'Export key'],
  ['/account/password', 'Password'],
];

/** A form's error, announced to screen readers. */
export function errorBox(message: string | undefined): SafeHtml | '' {
  return message ? html`<p class="error" role="alert" id="form-error">${message}</p>` : '';
}

export function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${token}">`;
}

function navigation(user: SignedIn, path: string | undefined): SafeHtml {
  return html`<nav class="main" aria-label="Account">
    <ul>
      ${NAV.map(([href, label]) => html`<li><a href="${href}"${href === path ? html` aria-current="page"` : ''}>${label}</a></li>`)}
      <li><form method="post" action="/logout">${csrfField(user.csrf)}<button type="submit" class="link" id="logout">Log out</button></form></li>
    </ul>
  </nav>`;
}

export function layout(o: PageOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
${o.refreshSeconds ? html`<meta http-equiv="refresh" content="${o.refreshSeconds}">` : ''}
<title>${o.title} · Keyfarm</title>
<link rel="stylesheet" href="${ASSET_URLS.css}">
<script src="${ASSET_URLS.js}" defer></script>
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="site"><div class="bar">
  <a class="brand" href="/">Keyfarm</a>
  ${o.user ? navigation(o.user, o.path) : ''}
</div></header>
<main id="content">
${o.body}
</main>
${o.user ? html`<footer class="site"><p>Signed in as ${o.user.email}.</p></footer>` : ''}
</body>
</html>
`.value;
}

/** Sends a page: HTML, never cached (pages may show keys and secrets the user asked for). */
export function sendPage(reply: FastifyReply, options: PageOptions, status = 200): FastifyReply {
  return reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(layout(options));
}
