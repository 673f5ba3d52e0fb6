// The bunkers relay-ingest listens for, and where each request goes: bunker pubkey -> authorization, user
// (whose shard serves it) and relays. Loaded whole at start and periodically, one row at a time when a
// bunker is announced or an authorization is revoked. Revoked and expired bunkers stay listed for a grace
// period, so their clients get an error reply rather than silence.
import type { Db } from '../database/pool.js';
import { findBunkerRoute, listBunkerRoutes, type BunkerRoute } from '../database/queries/nip46.js';
import { normalizeRelayUrl } from './subscription-plan.js';

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

  /** Relay -> bunker pubkeys to listen for there: every bunker on the service relays, each also on its own. */
  plan(serviceRelays: string[]): Map<string, Set<string>> {
    const all = new Set(this.routes.keys());
    const plan = new Map<string, Set<string>>(serviceRelays.map((r) => [r, all]));
    for (const route of this.routes.values()) {
      for (const relay of route.relays) {
        if (plan.get(relay) === all) continue;
        let set = plan.get(relay);
        if (!set) plan.set(relay, (set = new Set()));
        set.add(route.bunkerPubkey);
      }
    }
    return plan;
  }
}

function clean(r: BunkerRoute): BunkerRoute {
  const relays = [...new Set(r.relays.map(normalizeRelayUrl).filter((u): u is string => u !== undefined))];
  return { ...r, relays };
}
