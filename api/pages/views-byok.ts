// The register form for bring-your-own-key (GET /api/oauth/authorize with `byok_pubkey`): the app holds the
// key; the user picks an email and password for the account that key will have. Posting it is the consent:
// the page says what the app may do. Posts to POST /api/oauth/register (api/routes/oauth.ts).
import type { FastifyReply } from 'fastify';
import { findPolicy } from '../../database/queries/policies.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { csrfToken, pageCsp } from '../plugins/web-security.js';
import { policySlugOfScope } from '../services/oauth.js';
import { html } from './html.js';
import { csrfField, errorBox, type PageOptions } from './layout.js';
import { describePolicy } from './policy-words.js';

export interface ByokRequest {
  client_id: string;
  redirect_uri: string;
  byok_pubkey: string;
  scope?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  state?: string;
  email?: string;
  error?: string;
}

/** The page, with the reply's CSRF token and a CSP that lets the form lead back to the app. */
export async function byokRegisterPage(ctx: ApiContext, reply: FastifyReply, r: ByokRequest): Promise<PageOptions> {
  const policy = await findPolicy(ctx.db, policySlugOfScope(r.scope));
  reply.header('content-security-policy', pageCsp(ctx.config, [new URL(r.redirect_uri).origin]));
  const words = policy ? describePolicy(policy.permissions) : { can: [], cannot: [] };
  const hidden = (name: string, value: string | undefined) =>
    value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}">`;
  let npub = r.byok_pubkey;
  try {
    npub = npubEncode(r.byok_pubkey);
  } catch {
    // Shown as given; the registration refuses it.
  }
  return {
    title: 'Create an account for your key',
    body: html`<h1>Create an account for your key</h1>
      <p><strong id="app-name">${r.client_id}</strong> (<code>${new URL(r.redirect_uri).origin}</code>) asks Keyfarm to keep
        your existing Nostr key <code class="small" id="byok-npub">${npub}</code> and sign for it.</p>
      ${errorBox(r.error)}
      ${
        policy
          ? html`<h2>The app will be able to</h2><ul class="perms" id="can">${words.can.map((w) => html`<li>${w}</li>`)}</ul>
      <h2>It will not be able to</h2><ul class="perms" id="cannot">${words.cannot.map((w) => html`<li>${w}</li>`)}</ul>`
          : ''
      }
      <form method="post" action="/api/oauth/register" class="card">
        ${csrfField(csrfToken(reply))}
        ${hidden('pubkey', r.byok_pubkey)}${hidden('client_id', r.client_id)}${hidden('redirect_uri', r.redirect_uri)}
        ${hidden('scope', r.scope)}${hidden('code_challenge', r.code_challenge)}
        ${hidden('code_challenge_method', r.code_challenge_method)}${hidden('state', r.state)}
        <label for="email">Email</label>
        <input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${r.email ?? ''}">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024">
        <p class="hint">The app sends your key when it finishes signing you in; Keyfarm keeps it encrypted.</p>
        <div class="actions"><button type="submit" id="register">Create account and allow</button></div>
      </form>`,
  };
}
