// The user's own policies as pages: list, create, delete; and moving a connected app to another policy.
// The form is read into the same shape, and checked against the same schema, as POST /api/user/policies.
import { type Static, Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from 'typebox/value';
import { listOwnedPolicies } from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { MAX_LIFETIME_SECONDS, PolicyBody } from '../routes/policies.js';
import { PolicySlug, Uuid } from '../schemas.js';
import {
  changeAuthorizationPolicy,
  createPolicy,
  removePolicy,
  type PolicyInput,
} from '../services/custom-policies.js';
import { FieldError, failedForm, formError } from './forms.js';
import { requirePageUser, signedIn } from './guard.js';
import { sendPage } from './layout.js';
import { policiesPage } from './views-policies.js';

const Csrf = Type.String({ maxLength: 512 });
const Field = (maxLength: number) => Type.Optional(Type.String({ maxLength }));
const Check = Type.Optional(Type.Literal('on'));

export const PolicyForm = Type.Object({
  _csrf: Csrf,
  name: Field(200),
  description: Field(1000),
  kinds: Field(2000),
  nip44_encrypt: Check,
  nip44_decrypt: Check,
  nip04_encrypt: Check,
  nip04_decrypt: Check,
  max_content_bytes: Field(20),
  expires_after_minutes: Field(20),
  max_uses: Field(20),
  ask: Check,
});
export type PolicyFormBody = Static<typeof PolicyForm>;

const NOTICES = new Map([
  ['created', 'Your policy is created. Choose it when you connect an app, or for an app under Connected apps.'],
  ['deleted', 'The policy is deleted.'],
]);

function parseKinds(text: string): number[] | 'all' {
  const t = text.trim();
  if (t.toLowerCase() === 'all') return 'all';
  if (t === '') return [];
  const parts = t.split(/[\s,]+/).filter(Boolean);
  const kinds = parts.map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : Number.NaN));
  if (kinds.some((k) => Number.isNaN(k) || k > 65_535))
    throw new FieldError('kinds', 'Enter kinds as numbers from 0 to 65535, separated by commas, or “all”.');
  return kinds;
}

function parseCount(field: string, text: string | undefined, words: string): number | undefined {
  const t = (text ?? '').trim();
  if (t === '') return undefined;
  if (!/^\d{1,10}$/.test(t) || Number(t) < 1)
    throw new FieldError(field, `Enter ${words} as a whole number from 1, or leave it empty.`);
  return Number(t);
}

/** The form as an API body, or a FieldError on the first field that cannot be one. */
export function policyInputOfForm(f: PolicyFormBody): PolicyInput {
  const minutes = parseCount('expires_after_minutes', f.expires_after_minutes, 'the minutes');
  if (minutes !== undefined && minutes * 60 > MAX_LIFETIME_SECONDS)
    throw new FieldError('expires_after_minutes', 'That is longer than ten years.');
  const input: PolicyInput = {
    name: (f.name ?? '').trim(),
    description: (f.description ?? '').trim(),
    permissions: {
      allowed_kinds: parseKinds(f.kinds ?? ''),
      nip44_encrypt: f.nip44_encrypt === 'on',
      nip44_decrypt: f.nip44_decrypt === 'on',
      nip04_encrypt: f.nip04_encrypt === 'on',
      nip04_decrypt: f.nip04_decrypt === 'on',
      max_content_bytes: parseCount('max_content_bytes', f.max_content_bytes, 'the size'),
      expires_after_seconds: minutes === undefined ? undefined : minutes * 60,
      max_uses: parseCount('max_uses', f.max_uses, 'the number of uses'),
      ask: f.ask === 'on',
    },
  };
  if (input.name === '') throw new FieldError('name', 'Give the policy a name.');
  if (!Value.Check(PolicyBody, input)) {
    const first = [...Value.Errors(PolicyBody, input)][0];
    const path = String((first as { instancePath?: string; path?: string } | undefined)?.instancePath ?? '');
    const field = ['name', 'description', 'allowed_kinds', 'max_content_bytes', 'max_uses'].find((n) =>
      path.includes(n),
    );
    const name = field === 'allowed_kinds' ? 'kinds' : (field ?? 'name');
    throw new FieldError(name, 'This value is not allowed here: check its length or range.');
  }
  return input;
}

export const policyPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preHandler', requirePageUser(ctx));

  app.get(
    '/account/policies',
    { schema: { querystring: Type.Object({ notice: Type.Optional(Type.String({ maxLength: 32 })) }) } },
    async (request, reply) => {
      const policies = await listOwnedPolicies(ctx.db, { userId: request.user!.id });
      const notice = NOTICES.get(request.query.notice ?? '');
      return sendPage(reply, policiesPage(signedIn(request, reply), policies, undefined, notice));
    },
  );

  app.post('/account/policies', { schema: { body: PolicyForm } }, async (request, reply) => {
    const { _csrf, ...values } = request.body;
    try {
      await createPolicy(ctx, { userId: request.user!.id }, policyInputOfForm(request.body));
      return reply.redirect('/account/policies?notice=created', 303);
    } catch (err) {
      const failure = formError(err, reply);
      const policies = await listOwnedPolicies(ctx.db, { userId: request.user!.id });
      return sendPage(
        reply,
        policiesPage(signedIn(request, reply), policies, failedForm(failure, values)),
        failure.statusCode,
      );
    }
  });

  app.post(
    '/account/policies/delete',
    { schema: { body: Type.Object({ slug: PolicySlug, _csrf: Csrf }) } },
    async (request, reply) => {
      await removePolicy(ctx, { userId: request.user!.id }, request.body.slug);
      return reply.redirect('/account/policies?notice=deleted', 303);
    },
  );

  app.post(
    '/account/apps/policy',
    { schema: { body: Type.Object({ authorization_id: Uuid, policy_slug: PolicySlug, _csrf: Csrf }) } },
    async (request, reply) => {
      await changeAuthorizationPolicy(ctx, request.user!.id, request.body.authorization_id, request.body.policy_slug);
      return reply.redirect('/account/apps?notice=policy-changed', 303);
    },
  );
};
