// The team page's policies section: the team's own policies, and for admins the form that makes one (the
// same form as the account's policies page) and a delete button on each.
import type { CustomPolicy } from '../../database/queries/policies.js';
import type { FormState } from './forms.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, type SignedIn } from './layout.js';
import { policyForm, policySummary } from './views-policies.js';

export function teamPoliciesSection(
  user: SignedIn,
  team: { id: string; admin: boolean },
  policies: CustomPolicy[],
  form: FormState,
): SafeHtml {
  const card = (p: CustomPolicy) => html`<li class="card custom-policy" data-policy="${p.slug}">
    ${policySummary(p)}
    ${
      team.admin
        ? html`<form method="post" action="/teams/${team.id}/policies/delete" data-confirm="Delete ${p.display_name}?">
      ${csrfField(user.csrf)}<input type="hidden" name="slug" value="${p.slug}">
      <div class="actions"><button type="submit" class="danger">Delete ${p.display_name}</button></div></form>`
        : ''
    }</li>`;
  return html`<section aria-labelledby="team-policies-title"><h2 id="team-policies-title">Team policies</h2>
    <p>Besides the built-in permissions, the team’s apps may be given one of the team’s own policies.</p>
    ${
      policies.length
        ? html`<ul class="policies" id="team-policy-list">${policies.map(card)}</ul>`
        : html`<p class="muted" id="no-team-policies">The team has no policy of its own yet.</p>`
    }
    ${
      team.admin
        ? html`<h3>New team policy</h3>
    ${policyForm(user, form, `/teams/${team.id}/policies`, 'Ask the admin who connected the app, request by request, for anything else')}`
        : ''
    }</section>`;
}
