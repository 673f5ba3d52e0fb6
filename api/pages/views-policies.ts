// The user's own policies page, and the control on the connected-apps page that moves an app to another
// policy. Kept apart from views-account.ts so the account pages stay small.
import type { AuthorizationRow } from '../../database/queries/authorizations.js';
import type { CustomPolicy, Policy } from '../../database/queries/policies.js';
import { emptyForm, fieldAttrs, fieldError, formErrorBox, type FormState } from './forms.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';
import { describePolicy } from './policy-words.js';

/** On a connected app's card: choose another policy, in force at once. */
export function changePolicyForm(user: SignedIn, a: AuthorizationRow, policies: Policy[]): SafeHtml {
  const id = `policy-${a.id}`;
  return html`<form method="post" action="/account/apps/policy" class="change-policy">
    ${csrfField(user.csrf)}<input type="hidden" name="authorization_id" value="${a.id}">
    <label for="${id}">Change its permission</label>
    <select id="${id}" name="policy_slug">${policies.map((p) => html`<option value="${p.slug}"${p.slug === a.policySlug ? html` selected` : ''}>${p.display_name}</option>`)}</select>
    <div class="actions"><button type="submit" class="secondary">Change permission of ${a.applicationName}</button></div>
  </form>`;
}

const NIP_RIGHTS: [string, string][] = [
  ['nip44_encrypt', 'Encrypt messages (NIP-44)'],
  ['nip44_decrypt', 'Decrypt messages (NIP-44)'],
  ['nip04_encrypt', 'Encrypt messages (NIP-04, old style)'],
  ['nip04_decrypt', 'Decrypt messages (NIP-04, old style)'],
];

/** What an app under a custom policy can and cannot do, with its name and identifier. */
export function policySummary(p: CustomPolicy): SafeHtml {
  const words = describePolicy(p.permissions);
  return html`<h2 class="policy-name">${p.display_name}</h2>
    ${p.description ? html`<p>${p.description}</p>` : ''}
    <p class="muted small">Identifier: <code>${p.slug}</code></p>
    <p>An app under it can:</p><ul>${words.can.map((w) => html`<li>${w}</li>`)}</ul>
    <p>It cannot:</p><ul>${words.cannot.map((w) => html`<li>${w}</li>`)}</ul>`;
}

function policyCard(user: SignedIn, p: CustomPolicy): SafeHtml {
  return html`<li class="card custom-policy" data-policy="${p.slug}">
    ${policySummary(p)}
    <form method="post" action="/account/policies/delete" data-confirm="Delete ${p.display_name}?">
      ${csrfField(user.csrf)}<input type="hidden" name="slug" value="${p.slug}">
      <div class="actions"><button type="submit" class="danger">Delete ${p.display_name}</button></div>
    </form>
  </li>`;
}

/**
 * The form that makes a policy, read by policyInputOfForm (policy-routes.ts): the same fields wherever a
 * policy is made (the account's policies, a team's).
 */
export function policyForm(user: SignedIn, form: FormState, action: string, askLabel: string): SafeHtml {
  const v = form.values;
  const checked = (name: string) => (v[name] === 'on' ? html` checked` : '');
  return html`${formErrorBox(form)}
      <form method="post" action="${action}" class="card policy-form" novalidate>
        ${csrfField(user.csrf)}
        <label for="name">Name</label>
        <input id="name" name="name" type="text" required maxlength="100" value="${v.name ?? ''}"${fieldAttrs(form, 'name')}>
        ${fieldError(form, 'name')}
        <label for="description">Description (optional)</label>
        <input id="description" name="description" type="text" maxlength="500" value="${v.description ?? ''}"${fieldAttrs(form, 'description')}>
        ${fieldError(form, 'description')}
        <label for="kinds">Event kinds it may sign</label>
        <input id="kinds" name="kinds" type="text" maxlength="2000" placeholder="e.g. 1, 7, 22242 (or all)" value="${v.kinds ?? ''}"${fieldAttrs(form, 'kinds', 'kinds-hint')}>
        ${fieldError(form, 'kinds')}
        <p class="hint" id="kinds-hint">Numbers from 0 to 65535, separated by commas or spaces; “all” for any kind; empty for none.</p>
        <fieldset><legend>Private messages</legend>
          ${NIP_RIGHTS.map(([name, label]) => html`<label class="check"><input type="checkbox" id="${name}" name="${name}"${checked(name)}> ${label}</label>`)}
        </fieldset>
        <label for="max_content_bytes">Largest content, in bytes (optional)</label>
        <input id="max_content_bytes" name="max_content_bytes" type="number" min="1" max="1048576" value="${v.max_content_bytes ?? ''}"${fieldAttrs(form, 'max_content_bytes')}>
        ${fieldError(form, 'max_content_bytes')}
        <label for="expires_after_minutes">Apps stop working this many minutes after connecting (optional)</label>
        <input id="expires_after_minutes" name="expires_after_minutes" type="number" min="1" value="${v.expires_after_minutes ?? ''}"${fieldAttrs(form, 'expires_after_minutes')}>
        ${fieldError(form, 'expires_after_minutes')}
        <label for="max_uses">Most signatures, encryptions and decryptions per app (optional)</label>
        <input id="max_uses" name="max_uses" type="number" min="1" value="${v.max_uses ?? ''}"${fieldAttrs(form, 'max_uses')}>
        ${fieldError(form, 'max_uses')}
        <label class="check"><input type="checkbox" id="ask" name="ask"${checked('ask')}> ${askLabel}</label>
        <div class="actions"><button type="submit">Create policy</button></div>
      </form>`;
}

export function policiesPage(
  user: SignedIn,
  policies: CustomPolicy[],
  form: FormState = emptyForm(),
  notice?: string,
): PageOptions {
  return {
    title: 'Your policies',
    user,
    path: '/account/policies',
    body: html`<h1>Your policies</h1>
      <p>A policy says what an app may do with your key. Besides the built-in ones, make your own here, then
        choose it when you connect an app, or for an app already connected under <a href="/account/apps">Connected apps</a>.</p>
      ${notice ? html`<p class="notice" role="status" id="policies-notice">${notice}</p>` : ''}
      ${policies.length ? html`<ul class="policies">${policies.map((p) => policyCard(user, p))}</ul>` : html`<p id="no-policies">You have no policy of your own yet.</p>`}
      <h2>New policy</h2>
      ${policyForm(user, form, '/account/policies', 'Ask me, request by request, for anything else')}`,
  };
}
