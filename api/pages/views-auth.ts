// Pages without a session (log in, register, errors) and the OAuth consent page.
import type { Policy } from '../../database/queries/policies.js';
import { html, type SafeHtml } from './html.js';
import { emptyForm, fieldAttrs, fieldError, formErrorBox, type FormState } from './forms.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';
import { describePolicy } from './policy-words.js';

export interface AuthForm {
  csrf: string;
  next: string;
  /** What the user typed (the email; never a password or key) and the mistake. */
  form?: FormState;
  /** Shown above the form, e.g. "An app asks you to log in". */
  intro?: string;
}

/** The shared frame of the log-in and register forms: intro, error, CSRF token, `next`, email. */
function authPage(
  f: AuthForm,
  o: { title: string; action: string; fields: (form: FormState) => SafeHtml; submit: string; footer: SafeHtml },
): PageOptions {
  const form = f.form ?? emptyForm();
  return {
    title: o.title,
    body: html`<h1>${o.title}</h1>
      ${f.intro ? html`<p>${f.intro}</p>` : ''}
      ${formErrorBox(form)}
      <form method="post" action="${o.action}" class="card" novalidate>
        ${csrfField(f.csrf)}
        <input type="hidden" name="next" value="${f.next}">
        <label for="email">Email</label>
        <input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${form.values.email ?? ''}"${fieldAttrs(form, 'email')}>
        ${fieldError(form, 'email')}
        ${o.fields(form)}
        <div class="actions"><button type="submit">${o.submit}</button></div>
      </form>
      ${o.footer}`,
  };
}

export function loginPage(f: AuthForm): PageOptions {
  return authPage(f, {
    title: 'Log in',
    action: '/login',
    submit: 'Log in',
    fields: (form) => html`<label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${fieldAttrs(form, 'password')}>
        ${fieldError(form, 'password')}`,
    footer: html`<p><a href="/forgot-password" id="forgot-link">Forgot your password?</a></p>
      <p>No account yet? <a href="/register?next=${encodeURIComponent(f.next)}" id="register-link">Create one</a>.</p>`,
  });
}

export function registerPage(f: AuthForm): PageOptions {
  return authPage(f, {
    title: 'Create an account',
    action: '/register',
    submit: 'Create account',
    fields: (form) => html`<label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"${fieldAttrs(form, 'password', 'password-hint')}>
        ${fieldError(form, 'password')}
        <p class="hint" id="password-hint">At least 8 characters. Keyfarm makes a new Nostr key for you and keeps it encrypted.</p>
        <label for="confirm_password">Password again</label>
        <input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"${fieldAttrs(form, 'confirm_password')}>
        ${fieldError(form, 'confirm_password')}
        <label for="nsec">Import an existing key (optional)</label>
        <input id="nsec" name="nsec" type="password" autocomplete="off" maxlength="200"${fieldAttrs(form, 'nsec', 'nsec-hint')}>
        ${fieldError(form, 'nsec')}
        <p class="hint" id="nsec-hint">An nsec1… or 64 hex characters. Leave empty to get a new key.</p>`,
    footer: html`<p>Already registered? <a href="/login?next=${encodeURIComponent(f.next)}">Log in</a>.</p>`,
  });
}

export function welcomePage(): PageOptions {
  return {
    title: 'Welcome',
    body: html`<h1>Your Nostr key, kept safe</h1>
      <p>Keyfarm holds your Nostr key for you, encrypted, and signs for the apps you allow, so you never paste your secret key into an app.
        You decide what each app may do, and you can revoke any app at any time.</p>
      <div class="actions"><a class="button" href="/register" id="start-register">Create an account</a><a class="button secondary" href="/login" id="start-login">Log in</a></div>
      <h2>Then</h2>
      <ol id="next-steps">
        <li><strong>Connect an app:</strong> choose “Log in with Keyfarm” in the app, or give it a bunker link, or paste its nostrconnect:// link.</li>
        <li><strong>Back up your key:</strong> export it once and keep it offline, so it is yours wherever you go.</li>
      </ol>`,
  };
}

export function errorPage(title: string, message: string, user?: SignedIn): PageOptions {
  return {
    title,
    user,
    body: html`<h1>${title}</h1><p class="error" role="alert">${message}</p><p><a href="/account">Back to your account</a></p>`,
  };
}

export interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  redirectOrigin: string;
  /** What the app asked for, `policy:<slug>`. */
  scope: string;
  codeChallenge: string;
  codeChallengeMethod: string;
  state?: string;
  policy: Policy;
  /** The requested policy first, then the narrower ones the user may grant instead. */
  choices: Policy[];
  email: string;
  npub: string;
}

function policyDetails(p: Policy, ids?: { can: string; cannot: string }): SafeHtml {
  const words = describePolicy(p.permissions);
  return html`<p><strong>${p.display_name}</strong>: ${p.description}</p>
    <p class="small">It can:</p><ul class="perms small"${ids ? html` id="${ids.can}"` : ''}>${words.can.map((w) => html`<li>${w}</li>`)}</ul>
    <p class="small">It cannot:</p><ul class="perms small"${ids ? html` id="${ids.cannot}"` : ''}>${words.cannot.map((w) => html`<li>${w}</li>`)}</ul>`;
}

/** Only the decision, sized to fit a phone screen: who asks, where it returns, what it may do, Allow and Deny. */
export function consentPage(c: ConsentRequest, csrf: string): PageOptions {
  const hidden = (name: string, value: string | undefined) =>
    value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}">`;
  return {
    title: `Allow ${c.clientId}?`,
    body: html`<h1 class="consent-title">Allow <span id="app-name">${c.clientId}</span> to use your Nostr key?</h1>
      <form method="post" action="/oauth/consent" class="card consent">
        ${csrfField(csrf)}
        ${hidden('client_id', c.clientId)}${hidden('redirect_uri', c.redirectUri)}${hidden('requested_scope', c.scope)}
        ${hidden('code_challenge', c.codeChallenge)}${hidden('code_challenge_method', c.codeChallengeMethod)}${hidden('state', c.state)}
        <dl class="facts keep">
          <dt>Returns to</dt><dd><code id="redirect-origin">${c.redirectOrigin}</code></dd>
          <dt>Your account</dt><dd id="account-email">${c.email}</dd>
        </dl>
        <label for="scope">What it may do</label>
        <select id="scope" name="scope" data-describe="scope-words" aria-describedby="scope-words">
          ${c.choices.map((p) => html`<option value="policy:${p.slug}" data-words="${p.description}"${p.slug === c.policy.slug ? html` selected` : ''}>${p.display_name}${p.slug === c.policy.slug ? ' (as asked)' : ''}</option>`)}
        </select>
        <p class="hint" id="scope-words">${c.policy.description}</p>
        <div class="actions">
          <button type="submit" name="approved" value="true" id="approve">Allow</button>
          <button type="submit" name="approved" value="false" class="secondary" id="deny">Deny</button>
        </div>
      </form>
      <p class="muted small">Keyfarm does not check app names: allow only if you trust the address above.
        You can give less than the app asks for, and revoke it any time under Connected apps.</p>
      <details class="card" id="details">
        <summary>Exactly what <span id="policy-name">${c.policy.display_name}</span> allows</summary>
        ${policyDetails(c.policy, { can: 'can', cannot: 'cannot' })}
        ${c.choices.slice(1).map((p) => policyDetails(p))}
        <p class="muted small">Signing as <code>${c.npub}</code>.</p>
      </details>`,
  };
}
