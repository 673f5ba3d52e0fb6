// The relays an authorization is created with. The service's relays (BUNKER_RELAYS) are free; every other
// relay is a user relay: checked against the address policy (shared/user-relay-policy.ts) and counted
// against three limits, so one user cannot take the relay slots every other user's bunkers need.
import type { Queryable } from '../../database/pool.js';
import {
  countLiveAuthorizations,
  countLiveUserRelays,
  liveUserRelays,
  lockRelaySlots,
  lockUserAuthorizations,
} from '../../database/queries/authorizations.js';
import type { Config } from '../../shared/config.js';
import { normalizeRelayUrl } from '../../shared/nostr/relay-url.js';
import {
  RelayRefusedError,
  checkResolvesPublic,
  checkUserRelayUrl,
  userRelayPolicy,
} from '../../shared/user-relay-policy.js';
import { HttpError, badRequest, unavailable } from '../errors.js';

export type UserRelayLimits = Pick<
  Config,
  | 'BUNKER_RELAYS'
  | 'USER_RELAYS_PER_AUTHORIZATION'
  | 'USER_RELAYS_PER_USER'
  | 'USER_RELAYS_TOTAL'
  | 'USER_RELAYS_ALLOW_WS'
  | 'USER_RELAYS_ALLOW_PRIVATE'
  | 'USER_RELAYS_ALLOWLIST'
  | 'MAX_AUTHORIZATIONS_PER_USER'
>;

export interface VettedRelays {
  /** What the authorization stores and its bunker link lists. */
  relays: string[];
  /** Those of them that are not service relays. */
  userRelays: string[];
}

const limitReached = (msg: string) => new HttpError(409, msg);

/** Every spelling a service relay may be stored in: as configured and normalised. */
export function serviceRelaySpellings(config: Pick<Config, 'BUNKER_RELAYS'>): string[] {
  const normalized = config.BUNKER_RELAYS.map(normalizeRelayUrl).filter((u): u is string => u !== undefined);
  return [...new Set([...config.BUNKER_RELAYS, ...normalized])];
}

/** Normalises and checks the requested relays (none: the service's); 400 for a refused one or too many. */
export async function vetRelays(config: UserRelayLimits, requested: string[] | undefined): Promise<VettedRelays> {
  if (!requested?.length) return { relays: config.BUNKER_RELAYS, userRelays: [] };
  const service = new Set(serviceRelaySpellings(config));
  const policy = userRelayPolicy(config);
  const relays: string[] = [];
  const userRelays: { url: string; host: string }[] = [];
  for (const raw of requested) {
    const normalized = normalizeRelayUrl(raw);
    if (normalized !== undefined && service.has(normalized)) {
      if (!relays.includes(normalized)) relays.push(normalized);
      continue;
    }
    let checked: { url: string; host: string };
    try {
      checked = checkUserRelayUrl(raw, policy);
    } catch (err) {
      if (err instanceof RelayRefusedError)
        throw badRequest(`relay ${relays.length + userRelays.length + 1}: ${err.message}`, 'bad_relay');
      throw err;
    }
    if (relays.includes(checked.url)) continue;
    relays.push(checked.url);
    userRelays.push(checked);
  }
  if (userRelays.length > config.USER_RELAYS_PER_AUTHORIZATION) {
    throw badRequest(
      `at most ${config.USER_RELAYS_PER_AUTHORIZATION} relays besides the service's may be named`,
      'bad_relay',
    );
  }
  if (!policy.allowPrivate) {
    try {
      await Promise.all(userRelays.map((r) => checkResolvesPublic(r.host)));
    } catch (err) {
      if (err instanceof RelayRefusedError) throw badRequest(`relay: ${err.message}`, 'bad_relay');
      throw err;
    }
  }
  return { relays, userRelays: userRelays.map((r) => r.url) };
}

/**
 * Inside the creating transaction, before the insert: the user's live authorizations and user relays
 * stay under their caps (409), and the farm's distinct user relays under USER_RELAYS_TOTAL (503: the
 * relay pool could not serve one more). Advisory locks make check-and-insert one step across replicas.
 */
export async function reserveCreation(
  tx: Queryable,
  config: UserRelayLimits,
  userId: string,
  userRelays: string[],
): Promise<void> {
  await lockUserAuthorizations(tx, userId);
  if ((await countLiveAuthorizations(tx, userId)) >= config.MAX_AUTHORIZATIONS_PER_USER) {
    throw limitReached(`at most ${config.MAX_AUTHORIZATIONS_PER_USER} live authorizations per user: revoke one first`);
  }
  if (userRelays.length === 0) return;
  const service = serviceRelaySpellings(config);
  const ownKnown = new Set(await liveUserRelays(tx, service, { userId, among: userRelays }));
  const ownNew = userRelays.filter((r) => !ownKnown.has(r)).length;
  if (ownNew > 0 && (await countLiveUserRelays(tx, service, userId)) + ownNew > config.USER_RELAYS_PER_USER) {
    throw limitReached(
      `at most ${config.USER_RELAYS_PER_USER} relays of your own across your authorizations: revoke one that uses others, or use the service's relays`,
    );
  }
  await lockRelaySlots(tx);
  const farmKnown = new Set(await liveUserRelays(tx, service, { among: userRelays }));
  const farmNew = userRelays.filter((r) => !farmKnown.has(r)).length;
  if (farmNew > 0 && (await countLiveUserRelays(tx, service)) + farmNew > config.USER_RELAYS_TOTAL) {
    throw unavailable(
      'the service cannot listen on more relays right now: use the service relays, or try again later',
      60,
    );
  }
}
