// The signed-in user's pages: account, connected apps, new bunker, Nostr Connect, activity, key export, password.
import type { ActivityView } from '../../database/queries/activity.js';
import type { AuthorizationRow } from '../../database/queries/authorizations.js';
import type { Policy } from '../../database/queries/policies.js';
import { emptyForm, fieldAttrs, fieldError, formErrorBox, newPasswordFields, type FormState } from './forms.js';
import { html, raw, type SafeHtml } from './html.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';
import { kindName } from './policy-words.js';
import { changePolicyForm } from './views-policies.js';

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

export function accountPage(
  user: SignedIn,
  a: {
    pubkey: string;
    npub: string;
    created: Date;
    appCount: number;
    emailVerified: boolean;
    banner?: SafeHtml;
    notice?: string;
    /** Requests waiting for the user's approval (views-approvals.ts). */
    pending?: SafeHtml | '';
  },
): PageOptions {
  const firstSteps = html`<section class="card welcome" id="first-steps" aria-labelledby="first-steps-title">
        <h2 id="first-steps-title">Welcome to Keyfarm</h2>
        <p>Keyfarm keeps your Nostr key safe on the server and signs for the apps you allow, so the key never has to be pasted into an app.</p>
        <ol>
          <li><strong>Connect an app.</strong> Choose “Log in with Keyfarm” in the app, or <a href="/account/bunker">create a bunker link</a>, or <a href="/account/nostrconnect">paste the app’s nostrconnect:// link</a>.</li>
          <li><strong>Back up your key.</strong> <a href="/account/export">Export it</a> and keep it somewhere safe and offline, in case you ever leave Keyfarm.</li>
        </ol>
      </section>`;
  return {
    title: 'Your account',
    user,
    path: '/account',
    body: html`<h1>Your account</h1>
      ${a.notice ? html`<p class="notice" role="status" id="account-notice">${a.notice}</p>` : ''}
      ${a.banner ?? ''}
      ${a.pending ?? ''}
      ${a.appCount === 0 ? firstSteps : ''}
      <div class="card">
        <dl class="facts">
          <dt>Email</dt><dd><span id="account-email">${user.email}</span>
            <span class="badge" id="email-status">${a.emailVerified ? 'confirmed' : 'not confirmed'}</span> <a href="/account/email" class="small">Change</a></dd>
          <dt>Public key (npub)</dt><dd>${copyable('npub', a.npub, 'npub')}</dd>
          <dt>Public key (hex)</dt><dd><code class="value" id="pubkey">${a.pubkey}</code></dd>
          <dt>Member since</dt><dd>${when(a.created)}</dd>
        </dl>
      </div>
      <h2>What you can do here</h2>
      <ul>
        <li><a href="/account/apps">See and revoke the apps</a> that sign for you.</li>
        <li><a href="/account/bunker">Create a bunker connection</a> for a Nostr client, or <a href="/account/nostrconnect">paste a nostrconnect:// link</a>.</li>
        <li><a href="/account/activity">See recent signing activity</a>.</li>
        <li><a href="/teams">Share keys with a team</a>: invite people, hold team keys, connect apps that sign with them.</li>
        <li><a href="/account/export">Export your secret key</a>, <a href="/account/password">change your password</a> or <a href="/account/email">your email address</a>.</li>
      </ul>`,
  };
}

function connectedVia(a: AuthorizationRow): string {
  if (a.clientId) return `OAuth, returns to ${a.redirectOrigin ?? 'unknown'}`;
  if (a.clientPubkey) return 'Nostr Connect (nostrconnect://)';
  return 'Bunker link (bunker://)';
}

export function appsPage(
  user: SignedIn,
  apps: AuthorizationRow[],
  policies: Map<string, Policy>,
  notice?: string,
): PageOptions {
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
      ${
        a.revokedAt
          ? ''
          : html`${changePolicyForm(user, a, [...policies.values()])}<form method="post" action="/account/apps/revoke" data-confirm="Revoke ${a.applicationName}? It stops working at once.">
        ${csrfField(user.csrf)}<input type="hidden" name="authorization_id" value="${a.id}">
        <div class="actions"><button type="submit" class="danger">Revoke ${a.applicationName}</button></div>
      </form>`
      }
    </li>`;
  return {
    title: 'Connected apps',
    user,
    path: '/account/apps',
    body: html`<h1>Connected apps</h1>
      ${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
      ${
        apps.length === 0
          ? html`<p>No app is connected yet. <a href="/account/bunker">Create a bunker connection</a> or log in to an app with Keyfarm.</p>`
          : html`<ul class="apps">${apps.map(item)}</ul>`
      }`,
  };
}

export function bunkerFormPage(
  user: SignedIn,
  policies: Policy[],
  serviceRelays: string[],
  form: FormState = emptyForm(),
): PageOptions {
  const v = form.values;
  const relaysHint = serviceRelays.length
    ? 'One wss:// address a line. Leave empty for the service’s relays.'
    : 'One wss:// address a line. This Keyfarm has no relays of its own: enter at least one.';
  return {
    title: 'New bunker connection',
    user,
    path: '/account/bunker',
    body: html`<h1>New bunker connection</h1>
      <p>A bunker link lets a Nostr client sign with your key over Nostr relays (NIP-46), under the permission you choose.</p>
      ${formErrorBox(form)}
      <form method="post" action="/account/bunker" class="card" novalidate>
        ${csrfField(user.csrf)}
        <label for="app_name">App name</label>
        <input id="app_name" name="app_name" type="text" required maxlength="200" placeholder="e.g. My phone client" value="${v.app_name ?? ''}"${fieldAttrs(form, 'app_name')}>
        ${fieldError(form, 'app_name')}
        <label for="policy_slug">Permission</label>
        <select id="policy_slug" name="policy_slug"${fieldAttrs(form, 'policy_slug')}>${policyOptions(policies, v.policy_slug ?? 'social')}</select>
        ${fieldError(form, 'policy_slug')}
        <label for="relays">Relays</label>
        <textarea id="relays" name="relays"${serviceRelays.length ? '' : html` required`}${fieldAttrs(form, 'relays', 'relays-hint')}>${v.relays ?? serviceRelays.join('\n')}</textarea>
        ${fieldError(form, 'relays')}
        <p class="hint" id="relays-hint">${relaysHint}</p>
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
      <p>Paste this link into your Nostr client, or scan the code. It holds a one-time secret: it is shown only now, and not again if you reload.</p>
      <div class="card">
        ${copyable('bunker-url', url, 'link', true)}
        <figure class="qr" id="bunker-qr" aria-label="QR code of the bunker link">${raw(qrSvg)}</figure>
      </div>
      <p><a href="/account/apps">See your connected apps</a></p>`,
  };
}

/** After the one showing: the link's secret is not kept, so it cannot be shown again. */
export function bunkerGonePage(user: SignedIn): PageOptions {
  return {
    title: 'Bunker link',
    user,
    path: '/account/bunker',
    body: html`<h1>This bunker link was shown once</h1>
      <p class="notice" role="status" id="bunker-gone">For your safety the link with its secret is shown only once. Your bunker connection
        is under <a href="/account/apps">Connected apps</a>; if you did not copy the link, revoke it there and
        <a href="/account/bunker">create a new one</a>.</p>`,
  };
}

/** A NIP-46 permission of a nostrconnect:// link (perms=) in plain words. */
export function permWords(perm: string): string {
  const [method, param] = perm.split(':', 2) as [string, string | undefined];
  const kind = param !== undefined && /^\d{1,6}$/.test(param) ? Number(param) : undefined;
  switch (method) {
    case 'sign_event':
      return kind !== undefined ? `Sign ${kindName(kind)}` : 'Sign events of any kind';
    case 'nip04_encrypt':
      return 'Encrypt messages (NIP-04)';
    case 'nip04_decrypt':
      return 'Decrypt and read messages (NIP-04)';
    case 'nip44_encrypt':
      return 'Encrypt messages (NIP-44)';
    case 'nip44_decrypt':
      return 'Decrypt and read messages (NIP-44)';
    case 'get_public_key':
      return 'See your public key';
    case 'ping':
      return 'Check that the connection works';
    default:
      return `Something Keyfarm does not know: ${perm}`;
  }
}

export function nostrConnectPage(user: SignedIn, form: FormState = emptyForm()): PageOptions {
  return {
    title: 'Nostr Connect',
    user,
    path: '/account/nostrconnect',
    body: html`<h1>Connect with a nostrconnect:// link</h1>
      <p>Some Nostr clients show a <code>nostrconnect://</code> link or QR code. Paste it here: you see what the app asks for before anything is connected.</p>
      ${formErrorBox(form)}
      <form method="post" action="/account/nostrconnect/preview" class="card" novalidate>
        ${csrfField(user.csrf)}
        <label for="uri">nostrconnect:// link</label>
        <textarea id="uri" name="uri" required maxlength="4096" spellcheck="false" autocapitalize="off"${fieldAttrs(form, 'uri')}>${form.values.uri ?? ''}</textarea>
        ${fieldError(form, 'uri')}
        <div class="actions"><button type="submit">Preview</button></div>
      </form>`,
  };
}

export interface NostrConnectPreview {
  uri: string;
  name?: string;
  perms: string[];
  relays: string[];
}

export function nostrConnectPreviewPage(
  user: SignedIn,
  p: NostrConnectPreview,
  policies: Policy[],
  form: FormState = emptyForm(),
): PageOptions {
  const v = form.values;
  return {
    title: 'Connect this app?',
    user,
    path: '/account/nostrconnect',
    body: html`<h1>Connect <span id="preview-name">${p.name ?? 'this app'}</span>?</h1>
      ${formErrorBox(form)}
      <form method="post" action="/account/nostrconnect" class="card" novalidate>
        ${csrfField(user.csrf)}
        <input type="hidden" name="uri" value="${p.uri}">
        <h2>It asks to</h2>
        ${
          p.perms.length
            ? html`<ul class="perms" id="preview-perms">${p.perms.map((perm) => html`<li>${permWords(perm)}</li>`)}</ul>`
            : html`<p id="preview-perms">The link does not say (no perms=): the permission you pick below decides.</p>`
        }
        <h2>It listens on these relays</h2>
        <ul class="perms" id="preview-relays">${p.relays.map((r) => html`<li><code>${r}</code></li>`)}</ul>
        <label for="app_name">Name it</label>
        <input id="app_name" name="app_name" type="text" maxlength="200" value="${v.app_name ?? p.name ?? ''}"${fieldAttrs(form, 'app_name')}>
        ${fieldError(form, 'app_name')}
        <label for="policy_slug">Permission you give it</label>
        <select id="policy_slug" name="policy_slug"${fieldAttrs(form, 'policy_slug', 'policy-hint')}>${policyOptions(policies, v.policy_slug ?? 'social')}</select>
        ${fieldError(form, 'policy_slug')}
        <p class="hint" id="policy-hint">The app can do only what this permission allows, whatever it asks for.</p>
        <div class="actions"><button type="submit" id="confirm-connect">Connect</button><a class="button secondary" href="/account/nostrconnect">Cancel</a></div>
      </form>`,
  };
}

export type DeliveryState =
  | { state: 'delivered'; accepted: number; relays: number }
  | { state: 'failed'; relays: number }
  | { state: 'pending' }
  | { state: 'unknown' };

export function nostrConnectResultPage(user: SignedIn, appName: string, delivery: DeliveryState): PageOptions {
  const status = (() => {
    switch (delivery.state) {
      case 'delivered':
        return html`<p class="notice" role="status" id="delivery" data-state="delivered">${appName} is connected: ${delivery.accepted} of ${delivery.relays} relays took Keyfarm’s answer. The app should show that it is connected.</p>`;
      case 'failed':
        return html`<p class="error" role="alert" id="delivery" data-state="failed">${appName} is set up, but none of its ${delivery.relays} relays took Keyfarm’s answer, so the app may still be waiting. Check the app’s relays, then revoke this connection and paste a fresh link.</p>`;
      case 'pending':
        return html`<p class="notice" role="status" id="delivery" data-state="pending">${appName} is set up. Keyfarm is sending its answer to the app’s relays… This page refreshes by itself.</p>`;
      default:
        return html`<p class="error" role="alert" id="delivery" data-state="unknown">${appName} is set up, but Keyfarm could not confirm that its answer reached a relay. If the app still waits, revoke this connection and try again.</p>`;
    }
  })();
  return {
    title: 'Nostr Connect',
    user,
    path: '/account/nostrconnect',
    refreshSeconds: delivery.state === 'pending' ? 2 : undefined,
    body: html`<h1>Nostr Connect</h1>
      ${status}
      <p><a href="/account/apps">See your connected apps</a></p>`,
  };
}

export function activityPage(user: SignedIn, rows: ActivityView[]): PageOptions {
  const describe = (r: ActivityView) => (r.kind !== null ? `${r.method}: ${kindName(r.kind)}` : r.method);
  return {
    title: 'Signing activity',
    user,
    path: '/account/activity',
    body: html`<h1>Recent signing activity</h1>
      ${
        rows.length === 0
          ? html`<p>Nothing signed yet.</p>`
          : html`<div class="table-wrap"><table id="activity">
          <caption class="muted small">The last ${rows.length} requests, newest first.</caption>
          <thead><tr><th scope="col">When</th><th scope="col">App</th><th scope="col">What</th><th scope="col">Via</th></tr></thead>
          <tbody>${rows.map((r) => html`<tr><td>${when(r.created_at)}</td><td>${r.application_name}</td><td>${describe(r)}${r.event_id ? html`<br><code class="small">${r.event_id.slice(0, 16)}…</code>` : ''}</td><td>${r.door === 'nip46' ? 'relays' : 'HTTP'}</td></tr>`)}</tbody>
        </table></div>`
      }`,
  };
}

export function exportFormPage(user: SignedIn, minPassphrase: number, form: FormState = emptyForm()): PageOptions {
  return {
    title: 'Export your key',
    user,
    path: '/account/export',
    body: html`<h1>Export your secret key</h1>
      <p>Anyone with your secret key can post as you, forever. Export it only to back it up or move it to a signer you trust, and keep it private.</p>
      ${formErrorBox(form)}
      <form method="post" action="/account/export" class="card" novalidate>
        ${csrfField(user.csrf)}
        <label for="password">Your Keyfarm password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${fieldAttrs(form, 'password')}>
        ${fieldError(form, 'password')}
        <label for="passphrase">A passphrase for an encrypted copy (optional)</label>
        <input id="passphrase" name="passphrase" type="password" autocomplete="new-password" minlength="${minPassphrase}" maxlength="1024"${fieldAttrs(form, 'passphrase', 'passphrase-hint')}>
        ${fieldError(form, 'passphrase')}
        <p class="hint" id="passphrase-hint">At least ${minPassphrase} characters. You also get an ncryptsec (NIP-49), which opens only with it. Leave both empty for the nsec alone.</p>
        <label for="confirm_passphrase">The passphrase again</label>
        <input id="confirm_passphrase" name="confirm_passphrase" type="password" autocomplete="new-password" maxlength="1024"${fieldAttrs(form, 'confirm_passphrase')}>
        ${fieldError(form, 'confirm_passphrase')}
        <div class="actions"><button type="submit">Show my key</button></div>
      </form>`,
  };
}

export function exportResultPage(user: SignedIn, keys: { nsec: string; ncryptsec?: string }): PageOptions {
  return {
    title: 'Your secret key',
    user,
    path: '/account/export',
    body: html`<h1>Your secret key</h1>
      <p class="error" role="alert">Do not share these. Close this page when you are done; it is not kept.</p>
      ${
        keys.ncryptsec
          ? html`<div class="card">
        <h2>Encrypted (ncryptsec, NIP-49)</h2>
        <p class="muted small">Safer to store: it needs your passphrase.</p>
        ${copyable('ncryptsec', keys.ncryptsec, 'ncryptsec', true)}
      </div>`
          : ''
      }
      <div class="card">
        <h2>Plain (nsec)</h2>
        <p class="muted small">Hidden until you ask: anyone who sees it can use your key.</p>
        <details id="nsec-reveal">
          <summary id="reveal-nsec">Show the nsec</summary>
          ${copyable('nsec', keys.nsec, 'nsec', true)}
        </details>
      </div>`,
  };
}

export function passwordPage(user: SignedIn, result: { form?: FormState; changed?: boolean } = {}): PageOptions {
  const form = result.form ?? emptyForm();
  return {
    title: 'Change password',
    user,
    path: '/account/password',
    body: html`<h1>Change your password</h1>
      ${formErrorBox(form)}
      ${result.changed ? html`<p class="notice" role="status" id="changed">Your password is changed. Other sessions were logged out.</p>` : ''}
      <form method="post" action="/account/password" class="card" novalidate>
        ${csrfField(user.csrf)}
        <label for="current_password">Current password</label>
        <input id="current_password" name="current_password" type="password" autocomplete="current-password" required maxlength="1024"${fieldAttrs(form, 'current_password')}>
        ${fieldError(form, 'current_password')}
        ${newPasswordFields(form)}
        <div class="actions"><button type="submit">Change password</button></div>
      </form>`,
  };
}
