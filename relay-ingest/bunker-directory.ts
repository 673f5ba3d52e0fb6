// The bunkers relay-ingest listens for, and where each request goes: bunker pubkey -> authorization, user
// (whose shard serves it) and relays. Loaded whole at start and periodically, one row at a time when a
// bunker is announced or an authorization is revoked. Revoked and expired bunkers stay listed for a grace
// period, so their clients get an error reply (on the service relays) rather than silence.
import type { Db } from '../database/pool.js';
import { findBunkerRoute, listBunkerRoutes, type BunkerRoute } from '../database/queries/nip46.js';
import { normalizeRelayUrl } from '../shared/nostr/relay-url.js';

export class BunkerDirectory {
  private routes = new Map<string, BunkerRoute>();
  private byAuthorization = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly graceSeconds: number,
  ) {}

  get(bunkerPubkey: string): BunkerRoute | undefined {
    return this.routes.get(bunkerPubkey);
  }

  get size(): number {
    return this.routes.size;
  }

  pubkeyOfAuthorization(authorizationId: string): string | undefined {
    return this.byAuthorization.get(authorizationId);
  }

  async reload(): Promise<void> {
    const rows = await listBunkerRoutes(this.db, this.graceSeconds);
    const routes = new Map<string, BunkerRoute>();
    const byAuthorization = new Map<string, string>();
    for (const r of rows) {
      routes.set(r.bunkerPubkey, clean(r));
      byAuthorization.set(r.authorizationId, r.bunkerPubkey);
    }
    this.routes = routes;
    this.byAuthorization = byAuthorization;
  }

  /** Re-reads one bunker. A bunker whose row is gone is forgotten; revoked ones stay until the next reload past grace. */
  async refresh(bunkerPubkey: string): Promise<BunkerRoute | undefined> {
    const r = await findBunkerRoute(this.db, bunkerPubkey);
    if (!r) {
      const old = this.routes.get(bunkerPubkey);
      if (old) this.byAuthorization.delete(old.authorizationId);
      this.routes.delete(bunkerPubkey);
      return undefined;
    }
    const route = clean(r);
    this.routes.set(bunkerPubkey, route);
    this.byAuthorization.set(route.authorizationId, bunkerPubkey);
    return route;
  }

  /**
   * Relay -> bunker pubkeys to listen for there: every bunker on the service relays; each live bunker
   * also on its own relays. A revoked or expired bunker keeps only the service relays (for its error
   * replies), so its user relays leave the plan at once. User relays the policy refuses are left out, and
   * past `maxUserRelays` distinct ones the oldest authorizations' relays win, the rule the api admits by.
   */
  plan(serviceRelays: string[], opts: UserRelayRules, now = Date.now()): RelayPlan {
    const all = new Set(this.routes.keys());
    const plan = new Map<string, Set<string>>(serviceRelays.map((r) => [r, all]));
    const refused = new Set<string>();
    const overCap = new Set<string>();
    let userRelays = 0;
    for (const route of this.routes.values()) {
      if (!isLive(route, now)) continue;
      for (const relay of route.relays) {
        if (plan.get(relay) === all) continue;
        let set = plan.get(relay);
        if (!set) {
          if (!opts.allowed(relay)) {
            refused.add(relay);
            continue;
          }
          if (userRelays >= opts.maxUserRelays) {
            overCap.add(relay);
            continue;
          }
          userRelays++;
          plan.set(relay, (set = new Set()));
        }
        set.add(route.bunkerPubkey);
      }
    }
    return { plan, refused: [...refused], overCap: [...overCap] };
  }

  /** The soonest expiry (ms) still ahead among live bunkers with relays of their own, when their plan changes. */
  nextExpiry(serviceRelays: string[], now = Date.now()): number | undefined {
    const service = new Set(serviceRelays);
    let next: number | undefined;
    for (const route of this.routes.values()) {
      const at = route.expiresAt?.getTime();
      if (at === undefined || at <= now || route.revokedAt) continue;
      if (route.relays.every((r) => service.has(r))) continue;
      if (next === undefined || at < next) next = at;
    }
    return next;
  }
}

export interface UserRelayRules {
  /** Whether a relay that is not a service relay may be connected to (the address policy). */
  allowed(relay: string): boolean;
  /** Distinct user relays at most (USER_RELAYS_TOTAL). */
  maxUserRelays: number;
}

export interface RelayPlan {
  plan: Map<string, Set<string>>;
  /** User relays the policy refuses. */
  refused: string[];
  /** User relays past the cap. */
  overCap: string[];
}

function isLive(route: BunkerRoute, now: number): boolean {
  return route.revokedAt === null && (route.expiresAt === null || route.expiresAt.getTime() > now);
}

function clean(r: BunkerRoute): BunkerRoute {
  const relays = [...new Set(r.relays.map(normalizeRelayUrl).filter((u): u is string => u !== undefined))];
  return { ...r, relays };
}
