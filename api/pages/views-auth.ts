// Pages without a session (log in, register, errors) and the OAuth consent page.
import type { Policy } from '../../database/queries/policies.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, errorBox, type PageOptions, type SignedIn } from './layout.js';
import { describePolicy } from './policy-words.js';

export interface AuthForm {
  csrf: string;
  next: string;
  email?: string;
  error?: string;
  /** Shown above the form, e.g. "An app asks you to log in". */
  intro?: string;
}

/** The shared frame of the log-in and register forms: intro, error, CSRF token, `next`, email. */
function authPage(f: AuthForm, o: { title: string; action: string; fields: SafeHtml; submit: string; footer: SafeHtml }): PageOptions {
  return {
    title: o.title,
    body: html`<h1>${o.title}</h1>
      ${f.intro ? html`<p>${f.intro}</p>` : ''}
      ${errorBox(f.error)}
      <form method="post" action="${o.action}" class="card">
        ${csrfField(f.csrf)}
        <input type="hidden" name="next" value="${f.next}">
        <label for="email">Email</label>
        <input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${f.email ?? ''}">
        ${o.fields}
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
    fields: html`<label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">`,
    footer: html`<p>No account yet? <a href="/register?next=${encodeURIComponent(f.next)}" id="register-link">Create one</a>.</p>`,
  });
}

export function registerPage(f: AuthForm): PageOptions {
  return authPage(f, {
    title: 'Create an account',
    action: '/register',
    submit: 'Create account',
    fields: html`<label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024" aria-describedby="password-hint">
        <p class="hint" id="password-hint">At least 8 characters. Keyfarm makes a new Nostr key for you and keeps it encrypted.</p>
        <label for="nsec">Import an existing key (optional)</label>
        <input id="nsec" name="nsec" type="password" autocomplete="off" maxlength="200" aria-describedby="nsec-hint">
        <p class="hint" id="nsec-hint">An nsec1… or 64 hex characters. Leave empty to get a new key.</p>`,
    footer: html`<p>Already registered? <a href="/login?next=${encodeURIComponent(f.next)}">Log in</a>.</p>`,
  });
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
  scope: string;
  codeChallenge: string;
  codeChallengeMethod: string;
  state?: string;
  policy: Policy;
  npub: string;
}

export function consentPage(c: ConsentRequest, user: SignedIn): PageOptions {
  const words = describePolicy(c.policy.permissions);
  const hidden = (name: string, value: string | undefined) => (value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}">`);
  return {
    title: `Allow ${c.clientId}?`,
    user,
    body: html`<h1>Allow <span id="app-name">${c.clientId}</span> to use your Nostr key?</h1>
      <div class="card">
        <dl class="facts">
          <dt>App</dt><dd>${c.clientId}</dd>
          <dt>Sends you back to</dt><dd><code id="redirect-origin">${c.redirectOrigin}</code></dd>
          <dt>Permission</dt><dd><strong id="policy-name">${c.policy.display_name}</strong>: ${c.policy.description}</dd>
          <dt>Your account</dt><dd>${user.email}<br><code class="small">${c.npub}</code></dd>
        </dl>
      </div>
      <h2>The app will be able to</h2>
      <ul class="perms" id="can">${words.can.map((w) => html`<li>${w}</li>`)}</ul>
      <h2>It will not be able to</h2>
      <ul class="perms" id="cannot">${words.cannot.map((w) => html`<li>${w}</li>`)}</ul>
      <p class="muted small">Keyfarm does not check app names: allow only if you trust the address above.
        You can revoke the app at any time under Connected apps.</p>
      <form method="post" action="/api/oauth/authorize">
        ${csrfField(user.csrf)}
        ${hidden('client_id', c.clientId)}${hidden('redirect_uri', c.redirectUri)}${hidden('scope', c.scope)}
        ${hidden('code_challenge', c.codeChallenge)}${hidden('code_challenge_method', c.codeChallengeMethod)}${hidden('state', c.state)}
        <div class="actions">
          <button type="submit" name="approved" value="true" id="approve">Allow</button>
          <button type="submit" name="approved" value="false" class="secondary" id="deny">Deny</button>
        </div>
      </form>`,
  };
}
