// Approval per request in plain words: the page where the user approves or denies one request, and the
// account page's list of requests still waiting.
import type { ApprovalView } from '../../database/queries/approvals.js';
import type { ApprovalSummary } from '../../shared/approvals.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';
import { kindName } from './policy-words.js';

const ENCRYPTS = new Set(['nip44_encrypt', 'nip04_encrypt']);
const DECRYPTS = new Set(['nip44_decrypt', 'nip04_decrypt']);

/** What the request asks, as a sentence. */
export function requestWords(method: string, kind: number | null | undefined): string {
  const nip = method.startsWith('nip04') ? 'NIP-04' : 'NIP-44';
  if (method === 'sign_event')
    return `Sign ${kind === null || kind === undefined ? 'an event' : kindName(kind)} in your name`;
  if (ENCRYPTS.has(method)) return `Encrypt a message as you (${nip})`;
  if (DECRYPTS.has(method)) return `Decrypt a message sent to you (${nip})`;
  return method;
}

/** A duration in the largest whole unit: "40 s", "3 min", "2 h". */
export function ageWords(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

function requestFacts(a: ApprovalView, s: ApprovalSummary): SafeHtml {
  const peer = s.peer
    ? html`<dt>${ENCRYPTS.has(s.method) ? 'Encrypted to' : 'Sent by'}</dt>
        <dd><code class="value" id="approval-peer">${npubEncode(s.peer)}</code> <span class="muted small">(hex ${s.peer})</span></dd>`
    : '';
  const content =
    s.method === 'sign_event'
      ? html`<dt>Kind</dt><dd id="approval-kind">${kindName(s.kind ?? -1)}</dd>
        <dt>Content</dt><dd><pre class="request-content" id="approval-content">${s.content ?? ''}</pre></dd>
        <dt>Tags</dt><dd id="approval-tags">${String(s.tags ?? 0)}</dd>`
      : '';
  return html`<dl class="facts">
      <dt>App</dt><dd id="approval-app">${a.applicationName}</dd>
      <dt>Asks to</dt><dd id="approval-what">${requestWords(s.method, s.kind ?? a.kind)}</dd>
      ${content}${peer}
      <dt>Asked</dt><dd id="approval-age">${ageWords(Date.now() - a.createdAt.getTime())} ago, over ${a.door === 'nip46' ? 'Nostr Connect' : 'HTTP'}</dd>
    </dl>`;
}

/** The decision page for a pending request. */
export function approvalPage(user: SignedIn, a: ApprovalView, s: ApprovalSummary): PageOptions {
  const always =
    s.method === 'sign_event' && s.kind !== undefined
      ? html`<button type="submit" name="decision" value="always" class="secondary" id="approve-always">Always allow ${kindName(s.kind)} for this app</button>`
      : '';
  return {
    title: 'Approve a request',
    user,
    body: html`<h1>${a.applicationName} asks for your approval</h1>
      <p>Your permissions for this app do not cover this request. Approve it only if you expect it.</p>
      <div class="card" id="approval">${requestFacts(a, s)}
        <p class="muted small">Waits for your answer until <time datetime="${a.expiresAt.toISOString()}">${a.expiresAt.toISOString().slice(11, 19)} UTC</time>.</p>
      </div>
      <form method="post" action="/approve/${a.id}" class="card">
        ${csrfField(user.csrf)}
        <div class="actions">
          <button type="submit" name="decision" value="once" id="approve-once">Approve once</button>
          ${always}
          <button type="submit" name="decision" value="deny" class="danger" id="deny">Deny</button>
        </div>
      </form>`,
  };
}

const OUTCOMES = {
  approved: 'You approved this request. The app gets its answer now.',
  denied: 'You denied this request. The app was told no.',
  expired: 'This request waited too long and expired. The app may ask again.',
} as const;

/** What became of a request that no longer waits. */
export function approvalOutcomePage(user: SignedIn, a: ApprovalView, outcome: keyof typeof OUTCOMES): PageOptions {
  return {
    title: 'Request decided',
    user,
    body: html`<h1>${a.applicationName}: ${requestWords(a.method, a.kind)}</h1>
      <p class="notice" role="status" id="approval-outcome" data-outcome="${outcome}">${OUTCOMES[outcome]}</p>
      <p><a href="/account">Back to your account</a></p>`,
  };
}

/** The account page's list of requests waiting for the user, with their age; nothing when none waits. */
export function pendingApprovalsSection(list: ApprovalView[]): SafeHtml | '' {
  if (list.length === 0) return '';
  const now = Date.now();
  return html`<section class="card" id="pending-approvals" aria-labelledby="pending-approvals-title">
      <h2 id="pending-approvals-title">Requests waiting for you</h2>
      <ul>
        ${list.map(
          (
            a,
          ) => html`<li data-approval="${a.id}"><a href="/approve/${a.id}">${a.applicationName}: ${requestWords(a.method, a.kind)}</a>
            <span class="muted small">asked ${ageWords(now - a.createdAt.getTime())} ago</span></li>`,
        )}
      </ul>
    </section>`;
}
