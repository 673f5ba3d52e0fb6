// The signed-in user's pages: account, connected apps, new bunker, Nostr Connect, activity, key export, password.
import type { ActivityView } from '../../database/queries/activity.js';
import type { AuthorizationRow } from '../../database/queries/authorizations.js';
import type { Policy } from '../../database/queries/policies.js';
import { html, raw, type SafeHtml } from './html.js';
import { csrfField, errorBox, type PageOptions, type SignedIn } from './layout.js';
import { kindName } from './policy-words.js';

const when = (d: Date | null | undefined): SafeHtml | string =>
  d ? html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>` : 'never';

function policyOptions(policies: Policy[], selected: string): SafeHtml {
  return html`${policies.map((p) => html`<option value="${p.slug}"${p.slug === selected ? html` selected` : ''}>${p.display_name}: ${p.description}</option>`)}`;
}

/** A value with a copy button (the script copies the element's text; without it, the text is selectable). */
function copyable(id: string, value: string, label: string, secret = false): SafeHtml {
  return html`<code class="value${secret ? ' secret' : ''}" id="${id}">${value}</code>
    <div class="actions"><button type="button" class="secondary" data-copy="${id}" data-status="${id}-status">Copy ${label}</button>
    <span role="status" aria-live="polite" id="${id}-status" class="muted small"></span></div>`;
}

export function accountPage(user: SignedIn, a: { pubkey: string; npub: string; created: Date }): PageOptions {
  return {
    title: 'Your account',
    user,
    path: '/account',
    body: html`<h1>Your account</h1>
      <div class="card">
        <dl class="facts">
          <dt>Email</dt><dd>${user.email}</dd>
          <dt>Public key (npub)</dt><dd><code class="value" id="npub">${a.npub}</code></dd>
          <dt>Public key (hex)</dt><dd><code class="value" id="pubkey">${a.pubkey}</code></dd>
          <dt>Member since</dt><dd>${when(a.created)}</dd>
        </dl>
      </div>
      <h2>What you can do here</h2>
      <ul>
        <li><a href="/account/apps">See and revoke the apps</a> that sign for you.</li>
        <li><a href="/account/bunker">Create a bunker connection</a> for a Nostr client, or <a href="/account/nostrconnect">paste a nostrconnect:// link</a>.</li>
        <li><a href="/account/activity">See recent signing activity</a>.</li>
        <li><a href="/account/export">Export your secret key</a> or <a href="/account/password">change your password</a>.</li>
      </ul>`,
  };
}

function connectedVia(a: AuthorizationRow): string {
  if (a.clientId) return `OAuth, returns to ${a.redirectOrigin ?? 'unknown'}`;
  if (a.clientPubkey) return 'Nostr Connect (nostrconnect://)';
  return 'Bunker link (bunker://)';
}

export function appsPage(user: SignedIn, apps: AuthorizationRow[], policies: Map<string, Policy>, notice?: string): PageOptions {
  const item = (a: AuthorizationRow) => html`<li class="card app" data-authorization="${a.id}">
      <h2 class="app-name">${a.applicationName}${a.revokedAt ? html`<span class="badge revoked">revoked</span>` : ''}</h2>
      <dl class="facts">
        <dt>Permission</dt><dd class="app-policy">${policies.get(a.policySlug)?.display_name ?? a.policySlug}</dd>
        <dt>Connected via</dt><dd>${connectedVia(a)}</dd>
        <dt>Created</dt><dd>${when(a.createdAt)}</dd>
        <dt>Last activity</dt><dd>${when(a.lastActivity)}</dd>
        <dt>Requests</dt><dd class="app-count">${a.activityCount}</dd>
        ${a.revokedAt ? html`<dt>Revoked</dt><dd>${when(a.revokedAt)}</dd>` : ''}
      </dl>
      ${a.revokedAt ? '' : html`<form method="post" action="/account/apps/revoke" data-confirm="Revoke ${a.applicationName}? It stops working at once.">
        ${csrfField(user.csrf)}<input type="hidden" name="authorization_id" value="${a.id}">
        <div class="actions"><button type="submit" class="danger">Revoke ${a.applicationName}</button></div>
      </form>`}
    </li>`;
  return {
    title: 'Connected apps',
    user,
    path: '/account/apps',
    body: html`<h1>Connected apps</h1>
      ${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
      ${apps.length === 0
        ? html`<p>No app is connected yet. <a href="/account/bunker">Create a bunker connection</a> or log in to an app with Keyfarm.</p>`
        : html`<ul class="apps">${apps.map(item)}</ul>`}`,
  };
}

export function bunkerFormPage(user: SignedIn, policies: Policy[], relays: string[], error?: string): PageOptions {
  return {
    title: 'New bunker connection',
    user,
    path: '/account/bunker',
    body: html`<h1>New bunker connection</h1>
      <p>A bunker link lets a Nostr client sign with your key over Nostr relays (NIP-46), under the permission you choose.</p>
      ${errorBox(error)}
      <form method="post" action="/account/bunker" class="card">
        ${csrfField(user.csrf)}
        <label for="app_name">App name</label>
        <input id="app_name" name="app_name" type="text" required maxlength="200" placeholder="e.g. My phone client">
        <label for="policy_slug">Permission</label>
        <select id="policy_slug" name="policy_slug">${policyOptions(policies, 'social')}</select>
        <label for="relays">Relays</label>
        <textarea id="relays" name="relays" aria-describedby="relays-hint">${relays.join('\n')}</textarea>
        <p class="hint" id="relays-hint">One wss:// address a line. Leave empty for the service's relays.</p>
        <div class="actions"><button type="submit">Create bunker link</button></div>
      </form>`,
  };
}

export function bunkerCreatedPage(user: SignedIn, appName: string, url: string, qrSvg: string): PageOptions {
  return {
    title: 'Bunker link',
    user,
    path: '/account/bunker',
    body: html`<h1>Bunker link for ${appName}</h1>
      <p>Paste this link into your Nostr client, or scan the code. It holds a one-time secret: it is shown only now.</p>
      <div class="card">
        ${copyable('bunker-url', url, 'link', true)}
        <figure class="qr" id="bunker-qr" aria-label="QR code of the bunker link">${raw(qrSvg)}</figure>
      </div>
      <p><a href="/account/apps">See your connected apps</a></p>`,
  };
}

export function nostrConnectPage(user: SignedIn, policies: Policy[], result?: { error?: string; connected?: string }): PageOptions {
  return {
    title: 'Nostr Connect',
    user,
    path: '/account/nostrconnect',
    body: html`<h1>Connect with a nostrconnect:// link</h1>
      <p>Some Nostr clients show a <code>nostrconnect://</code> link or QR code. Paste it here and the client connects to your key.</p>
      ${errorBox(result?.error)}
      ${result?.connected ? html`<p class="notice" role="status" id="connected">${result.connected} is connected. <a href="/account/apps">See your apps</a>.</p>` : ''}
      <form method="post" action="/account/nostrconnect" class="card">
        ${csrfField(user.csrf)}
        <label for="uri">nostrconnect:// link</label>
        <textarea id="uri" name="uri" required maxlength="4096" spellcheck="false" autocapitalize="off"></textarea>
        <label for="app_name">App name (optional)</label>
        <input id="app_name" name="app_name" type="text" maxlength="200">
        <label for="policy_slug">Permission</label>
        <select id="policy_slug" name="policy_slug">${policyOptions(policies, 'social')}</select>
        <div class="actions"><button type="submit">Connect</button></div>
      </form>`,
  };
}

export function activityPage(user: SignedIn, rows: ActivityView[]): PageOptions {
  const describe = (r: ActivityView) => (r.kind !== null ? `${r.method}: ${kindName(r.kind)}` : r.method);
  return {
    title: 'Signing activity',
    user,
    path: '/account/activity',
    body: html`<h1>Recent signing activity</h1>
      ${rows.length === 0
        ? html`<p>Nothing signed yet.</p>`
        : html`<div class="table-wrap"><table id="activity">
          <caption class="muted small">The last ${rows.length} requests, newest first.</caption>
          <thead><tr><th scope="col">When</th><th scope="col">App</th><th scope="col">What</th><th scope="col">Via</th></tr></thead>
          <tbody>${rows.map((r) => html`<tr><td>${when(r.created_at)}</td><td>${r.application_name}</td><td>${describe(r)}${r.event_id ? html`<br><code class="small">${r.event_id.slice(0, 16)}…</code>` : ''}</td><td>${r.door === 'nip46' ? 'relays' : 'HTTP'}</td></tr>`)}</tbody>
        </table></div>`}`,
  };
}

export function exportFormPage(user: SignedIn, minPassphrase: number, error?: string): PageOptions {
  return {
    title: 'Export your key',
    user,
    path: '/account/export',
    body: html`<h1>Export your secret key</h1>
      <p>Anyone with your secret key can post as you, forever. Export it only to move it to a signer you trust, and keep it private.</p>
      ${errorBox(error)}
      <form method="post" action="/account/export" class="card">
        ${csrfField(user.csrf)}
        <label for="password">Your Keyfarm password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
        <label for="passphrase">A passphrase for the encrypted copy (ncryptsec)</label>
        <input id="passphrase" name="passphrase" type="password" autocomplete="new-password" required minlength="${minPassphrase}" maxlength="1024" aria-describedby="passphrase-hint">
        <p class="hint" id="passphrase-hint">At least ${minPassphrase} characters. The ncryptsec (NIP-49) can be opened only with it.</p>
        <div class="actions"><button type="submit">Show my key</button></div>
      </form>`,
  };
}

export function exportResultPage(user: SignedIn, keys: { nsec: string; ncryptsec: string }): PageOptions {
  return {
    title: 'Your secret key',
    user,
    path: '/account/export',
    body: html`<h1>Your secret key</h1>
      <p class="error" role="alert">Do not share these. Close this page when you are done; it is not kept.</p>
      <div class="card">
        <h2>Encrypted (ncryptsec, NIP-49)</h2>
        <p class="muted small">Safer to store: it needs your passphrase.</p>
        ${copyable('ncryptsec', keys.ncryptsec, 'ncryptsec', true)}
      </div>
      <div class="card">
        <h2>Plain (nsec)</h2>
        ${copyable('nsec', keys.nsec, 'nsec', true)}
      </div>`,
  };
}

export function passwordPage(user: SignedIn, result?: { error?: string; changed?: boolean }): PageOptions {
  return {
    title: 'Change password',
    user,
    path: '/account/password',
    body: html`<h1>Change your password</h1>
      ${errorBox(result?.error)}
      ${result?.changed ? html`<p class="notice" role="status" id="changed">Your password is changed. Other sessions were logged out.</p>` : ''}
      <form method="post" action="/account/password" class="card">
        ${csrfField(user.csrf)}
        <label for="current_password">Current password</label>
        <input id="current_password" name="current_password" type="password" autocomplete="current-password" required maxlength="1024">
        <label for="new_password">New password</label>
        <input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024">
        <label for="confirm_password">New password again</label>
        <input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024">
        <div class="actions"><button type="submit">Change password</button></div>
      </form>`,
  };
}
