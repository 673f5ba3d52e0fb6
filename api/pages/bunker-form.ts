// The "connect an app" form that a user's account page and a team's page both show: its fields, the app
// name and relay lines it is read into, and the one-time result page with the bunker link.
import type { FastifyReply, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { requireSomeRelay } from '../routes/authorizations.js';
import { PolicySlug } from '../schemas.js';
import { takeFlash } from './flash.js';
import { FieldError, sentence } from './forms.js';
import { signedIn } from './guard.js';
import { sendPage } from './layout.js';
import { bunkerCreatedPage, bunkerGonePage } from './views-account.js';

const MAX_RELAYS = 20;
const RELAY = /^wss?:\/\/[^\s/?#]+\S*$/;

/** The form's fields (a team's form adds the key). */
export const BunkerFormFields = {
  app_name: Type.String({ maxLength: 200 }),
  policy_slug: PolicySlug,
  relays: Type.Optional(Type.String({ maxLength: 12_000 })),
  _csrf: Type.String({ maxLength: 512 }),
};

/** One relay a line; empty means the service's relays. */
export function parseRelayLines(text: string): string[] {
  const relays = [
    ...new Set(
      text
        .split(/\s+/)
        .map((r) => r.trim())
        .filter(Boolean),
    ),
  ];
  if (relays.length > MAX_RELAYS) throw badRequest(`at most ${MAX_RELAYS} relays`);
  const bad = relays.find((r) => !RELAY.test(r) || r.length > 512);
  if (bad !== undefined) throw badRequest(`not a ws:// or wss:// relay address: ${bad.slice(0, 80)}`);
  return relays;
}

/** The app's name and relays from the form; a FieldError on the field that is wrong. */
export function readBunkerForm(
  config: Pick<ApiContext['config'], 'BUNKER_RELAYS'>,
  body: { app_name: string; relays?: string },
): { appName: string; relays: string[] } {
  const appName = body.app_name.trim();
  if (!appName) throw new FieldError('app_name', 'Give the app a name, so you can tell it apart later.');
  let relays: string[];
  try {
    relays = parseRelayLines(body.relays ?? '');
  } catch (err) {
    throw new FieldError('relays', `${sentence((err as Error).message)}.`);
  }
  requireSomeRelay(config, relays);
  return { appName, relays };
}

/** The result page: the bunker link and its QR code from the one-time flash, or "gone" once it was shown. */
export async function sendCreatedBunker(
  ctx: ApiContext,
  request: FastifyRequest,
  reply: FastifyReply,
  flash: string | undefined,
): Promise<FastifyReply> {
  const shown = await takeFlash<{ appName: string; bunkerUrl: string }>(ctx, request.sessionToken!, flash);
  if (!shown) return sendPage(reply, bunkerGonePage(signedIn(request, reply)));
  const qr = await QRCode.toString(shown.bunkerUrl, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return sendPage(reply, bunkerCreatedPage(signedIn(request, reply), shown.appName, shown.bunkerUrl, qr));
}
