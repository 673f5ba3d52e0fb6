// The team pages: the teams of the signed-in user, one team (members, invites, keys, authorizations), and
// the page a mailed invite opens. Admins get the forms; members see the same lists without them.
import type {
  MyTeam,
  TeamAuthorization,
  TeamInvite,
  TeamKey,
  TeamMember,
  TeamRole,
} from '../../database/queries/teams.js';
import type { CustomPolicy } from '../../database/queries/policies.js';
import { emptyForm, fieldAttrs, fieldError, formErrorBox, type FormState } from './forms.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';
import { teamPoliciesSection } from './views-team-policies.js';

const when = (d: Date | null | undefined): SafeHtml | string =>
  d ? html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>` : 'never';

const short = (hex: string) => `${hex.slice(0, 12)}…${hex.slice(-6)}`;

export function teamsPage(user: SignedIn, teams: MyTeam[], form: FormState = emptyForm()): PageOptions {
  return {
    title: 'Teams',
    user,
    path: '/teams',
    body: html`<h1>Teams</h1>
      <p>A team shares Nostr keys: its admins invite people by email, hold the team’s keys and connect apps that sign with them; its members see what the team holds.</p>
      ${
        teams.length === 0
          ? html`<p id="no-teams">You are in no team yet. Create one, or open the invite link a team mailed you.</p>`
          : html`<ul class="cards" id="team-list">${teams.map(
              (t) => html`<li class="card" data-team="${t.id}"><h2><a href="/teams/${t.id}">${t.name}</a></h2>
                <p class="muted">You are ${t.role === 'admin' ? 'an admin' : 'a member'} · ${t.memberCount} member${t.memberCount === 1 ? '' : 's'} · ${t.keyCount} key${t.keyCount === 1 ? '' : 's'}</p></li>`,
            )}</ul>`
      }
      <form method="post" action="/teams" class="card" novalidate>
        <h2>New team</h2>
        ${formErrorBox(form)}
        ${csrfField(user.csrf)}
        <label for="team_name">Name</label>
        <input id="team_name" name="name" type="text" required maxlength="100" value="${form.values.name ?? ''}"${fieldAttrs(form, 'name')}>
        ${fieldError(form, 'name')}
        <div class="actions"><button type="submit">Create team</button></div>
      </form>`,
  };
}

export interface TeamView {
  id: string;
  name: string;
  role: TeamRole;
  myPubkey: string;
  members: TeamMember[];
  invites: TeamInvite[];
  keys: TeamKey[];
  authorizations: TeamAuthorization[];
  policies: { slug: string; displayName: string }[];
  /** The team's own policies (also among `policies`, which adds the built-ins). */
  ownPolicies: CustomPolicy[];
  serviceRelays: string[];
}

/** Which form a mistake belongs to, and the mistake. */
export interface TeamForms {
  invite?: FormState;
  key?: FormState;
  authorization?: FormState;
  policy?: FormState;
}

function membersSection(user: SignedIn, t: TeamView): SafeHtml {
  const admin = t.role === 'admin';
  const row = (m: TeamMember) => html`<li class="card member" data-member="${m.pubkey}">
      <strong class="member-email">${m.email}</strong> <span class="badge member-role">${m.role}</span>
      <span class="muted small">${short(m.pubkey)} · joined ${when(m.createdAt)}</span>
      ${
        admin
          ? html`<form method="post" action="/teams/${t.id}/members/role" class="inline">
          ${csrfField(user.csrf)}<input type="hidden" name="pubkey" value="${m.pubkey}">
          <input type="hidden" name="role" value="${m.role === 'admin' ? 'member' : 'admin'}">
          <button type="submit" class="secondary">${m.role === 'admin' ? 'Make member' : 'Make admin'}</button></form>`
          : ''
      }
      ${
        admin || m.pubkey === t.myPubkey
          ? html`<form method="post" action="/teams/${t.id}/members/remove" class="inline" data-confirm="${m.pubkey === t.myPubkey ? 'Leave the team?' : `Remove ${m.email}? Their apps on the team's keys stop at once.`}">
          ${csrfField(user.csrf)}<input type="hidden" name="pubkey" value="${m.pubkey}">
          <button type="submit" class="danger">${m.pubkey === t.myPubkey ? 'Leave team' : 'Remove'}</button></form>`
          : ''
      }
    </li>`;
  return html`<section aria-labelledby="members-title"><h2 id="members-title">Members</h2>
    <ul class="cards" id="member-list">${t.members.map(row)}</ul></section>`;
}

function invitesSection(user: SignedIn, t: TeamView, form: FormState): SafeHtml | '' {
  if (t.role !== 'admin') return '';
  return html`<section aria-labelledby="invites-title"><h2 id="invites-title">Invites</h2>
    ${
      t.invites.length
        ? html`<ul id="invite-list">${t.invites.map(
            (i) => html`<li data-invite="${i.email}">${i.email} (${i.role}), until ${when(i.expiresAt)}
              <form method="post" action="/teams/${t.id}/invites/cancel" class="inline">${csrfField(user.csrf)}
              <input type="hidden" name="email" value="${i.email}"><button type="submit" class="link">Cancel</button></form></li>`,
          )}</ul>`
        : html`<p class="muted">No invite is waiting.</p>`
    }
    <form method="post" action="/teams/${t.id}/invites" class="card" novalidate id="invite-form">
      ${formErrorBox(form)}
      ${csrfField(user.csrf)}
      <label for="invite_email">Email address</label>
      <input id="invite_email" name="email" type="email" required maxlength="254" value="${form.values.email ?? ''}"${fieldAttrs(form, 'email')}>
      ${fieldError(form, 'email')}
      <label for="invite_role">Role</label>
      <select id="invite_role" name="role">
        <option value="member"${form.values.role === 'admin' ? '' : html` selected`}>Member: sees the team</option>
        <option value="admin"${form.values.role === 'admin' ? html` selected` : ''}>Admin: manages the team</option>
      </select>
      <div class="actions"><button type="submit">Send invite</button></div>
    </form></section>`;
}

function keysSection(user: SignedIn, t: TeamView, form: FormState): SafeHtml {
  return html`<section aria-labelledby="keys-title"><h2 id="keys-title">Keys</h2>
    ${
      t.keys.length
        ? html`<ul class="cards" id="key-list">${t.keys.map(
            (k) => html`<li class="card" data-key="${k.pubkey}"><strong>${k.name}</strong>
              <code class="value key-pubkey">${k.pubkey}</code><span class="muted small">added ${when(k.createdAt)}</span>
              ${
                t.role === 'admin'
                  ? html`<form method="post" action="/teams/${t.id}/keys/delete" class="inline" data-confirm="Delete the key ${k.name}? Its secret is erased and every app that signs with it stops at once.">
                ${csrfField(user.csrf)}<input type="hidden" name="pubkey" value="${k.pubkey}">
                <button type="submit" class="danger">Delete key</button></form>`
                  : ''
              }</li>`,
          )}</ul>`
        : html`<p class="muted" id="no-keys">The team holds no key yet.</p>`
    }
    ${
      t.role === 'admin'
        ? html`<form method="post" action="/teams/${t.id}/keys" class="card" novalidate id="key-form" autocomplete="off">
      ${formErrorBox(form)}
      ${csrfField(user.csrf)}
      <label for="key_name">Name</label>
      <input id="key_name" name="name" type="text" required maxlength="100" value="${form.values.name ?? ''}"${fieldAttrs(form, 'name')}>
      ${fieldError(form, 'name')}
      <label for="secret_key">Secret key to import (nsec or hex)</label>
      <input id="secret_key" name="secret_key" type="password" maxlength="200" autocomplete="off"${fieldAttrs(form, 'secret_key', 'secret-key-hint')}>
      ${fieldError(form, 'secret_key')}
      <p class="hint" id="secret-key-hint">Leave empty to generate a new key.</p>
      <div class="actions"><button type="submit">Add key</button></div>
    </form>`
        : ''
    }</section>`;
}

function authorizationsSection(user: SignedIn, t: TeamView, form: FormState): SafeHtml {
  const admin = t.role === 'admin';
  const row = (a: TeamAuthorization) => html`<li class="card app" data-authorization="${a.id}">
      <h3 class="app-name">${a.applicationName}${a.revokedAt ? html`<span class="badge revoked">revoked</span>` : ''}</h3>
      <dl class="facts">
        <dt>Key</dt><dd>${a.keyName} (${short(a.keyPubkey)})</dd>
        <dt>Permission</dt><dd>${a.policySlug}</dd>
        <dt>Created by</dt><dd>${a.userEmail}, ${when(a.createdAt)}</dd>
        <dt>Requests</dt><dd>${Number(a.activityCount)}</dd>
      </dl>
      ${
        admin && !a.revokedAt
          ? html`<form method="post" action="/teams/${t.id}/authorizations/policy" class="change-policy">
        ${csrfField(user.csrf)}<input type="hidden" name="authorization_id" value="${a.id}">
        <label for="policy-${a.id}">Change its permission</label>
        <select id="policy-${a.id}" name="policy_slug">${t.policies.map((p) => html`<option value="${p.slug}"${p.slug === a.policySlug ? html` selected` : ''}>${p.displayName}</option>`)}</select>
        <div class="actions"><button type="submit" class="secondary">Change permission of ${a.applicationName}</button></div></form>
        <form method="post" action="/teams/${t.id}/authorizations/revoke" data-confirm="Revoke ${a.applicationName}? It stops working at once.">
        ${csrfField(user.csrf)}<input type="hidden" name="authorization_id" value="${a.id}">
        <div class="actions"><button type="submit" class="danger">Revoke ${a.applicationName}</button></div></form>`
          : ''
      }</li>`;
  const v = form.values;
  return html`<section aria-labelledby="auths-title"><h2 id="auths-title">Connected apps</h2>
    ${
      t.authorizations.length
        ? html`<ul class="cards" id="team-authorizations">${t.authorizations.map(row)}</ul>`
        : html`<p class="muted">No app signs with the team’s keys yet.</p>`
    }
    ${
      admin && t.keys.length
        ? html`<form method="post" action="/teams/${t.id}/authorizations" class="card" novalidate id="authorization-form">
      <h3>Connect an app to a team key</h3>
      ${formErrorBox(form)}
      ${csrfField(user.csrf)}
      <label for="auth_key">Key</label>
      <select id="auth_key" name="key_pubkey">${t.keys.map((k) => html`<option value="${k.pubkey}"${v.key_pubkey === k.pubkey ? html` selected` : ''}>${k.name} (${short(k.pubkey)})</option>`)}</select>
      <label for="app_name">App name</label>
      <input id="app_name" name="app_name" type="text" required maxlength="200" value="${v.app_name ?? ''}"${fieldAttrs(form, 'app_name')}>
      ${fieldError(form, 'app_name')}
      <label for="policy_slug">Permission</label>
      <select id="policy_slug" name="policy_slug"${fieldAttrs(form, 'policy_slug')}>${t.policies.map((p) => html`<option value="${p.slug}"${(v.policy_slug ?? 'social') === p.slug ? html` selected` : ''}>${p.displayName}</option>`)}</select>
      ${fieldError(form, 'policy_slug')}
      <label for="relays">Relays</label>
      <textarea id="relays" name="relays"${fieldAttrs(form, 'relays')}>${v.relays ?? t.serviceRelays.join('\n')}</textarea>
      ${fieldError(form, 'relays')}
      <div class="actions"><button type="submit">Create bunker link</button></div>
    </form>`
        : ''
    }</section>`;
}

export function teamPage(user: SignedIn, t: TeamView, forms: TeamForms = {}, notice?: string): PageOptions {
  return {
    title: t.name,
    user,
    path: '/teams',
    body: html`<p><a href="/teams">All teams</a></p>
      <h1 id="team-name">${t.name}</h1>
      <p class="muted" id="team-role">You are ${t.role === 'admin' ? 'an admin' : 'a member'} of this team.</p>
      ${notice ? html`<p class="notice" role="status" id="team-notice">${notice}</p>` : ''}
      ${membersSection(user, t)}
      ${invitesSection(user, t, forms.invite ?? emptyForm())}
      ${keysSection(user, t, forms.key ?? emptyForm())}
      ${authorizationsSection(user, t, forms.authorization ?? emptyForm())}
      ${teamPoliciesSection(user, { id: t.id, admin: t.role === 'admin' }, t.ownPolicies, forms.policy ?? emptyForm())}
      ${
        t.role === 'admin'
          ? html`<form method="post" action="/teams/${t.id}/delete" class="card" data-confirm="Delete ${t.name}? Its keys are erased and every app that signs with them stops at once.">
        ${csrfField(user.csrf)}<div class="actions"><button type="submit" class="danger">Delete team</button></div></form>`
          : ''
      }`,
  };
}

export function acceptInvitePage(user: SignedIn, token: string, error?: string): PageOptions {
  return {
    title: 'Join a team',
    user,
    path: '/teams',
    body: html`<h1>Join a team</h1>
      ${
        error
          ? html`<p class="error" role="alert" id="invite-error">${error}</p><p><a href="/teams">Your teams</a></p>`
          : html`<p>You were invited to a team on Keyfarm. Join it as ${user.email}?</p>
      <form method="post" action="/teams/accept">${csrfField(user.csrf)}<input type="hidden" name="token" value="${token}">
        <div class="actions"><button type="submit">Join the team</button></div></form>`
      }`,
  };
}
