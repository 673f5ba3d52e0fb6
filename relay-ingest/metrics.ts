// relay-ingest's own counters, in the process registry beside shared/metrics.ts (the keycast-compatible
// nip46 request/processed/queue-dropped counters live there).
import { Counter, Gauge } from 'prom-client';
import { registry } from '../shared/metrics.js';

const P = 'keyfarm';

export const ingestMetrics = {
  /** Events not turned into a job, by reason: oversized, forged, malformed, unknown_bunker, duplicate, stale, future, rate_limited, redis_unavailable, queue_unavailable. */
  eventsDropped: new Counter({
    name: `${P}_nip46_events_dropped_total`,
    help: 'NIP-46 events received but not queued',
    labelNames: ['reason'],
    registers: [registry],
  }),
  /** Requests whose job produced no response event (content that could not be decrypted...). */
  noResponse: new Counter({
    name: `${P}_nip46_no_response_total`,
    help: 'NIP-46 requests that got no response',
    labelNames: ['reason'],
    registers: [registry],
  }),
  publish: new Counter({
    name: `${P}_nip46_publish_total`,
    help: 'Response publishes per relay, by outcome (ok, failed) after retries',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  publishRetries: new Counter({
    name: `${P}_nip46_publish_retries_total`,
    help: 'Response publishes tried again',
    registers: [registry],
  }),
  /** Service relays (BUNKER_RELAYS) only: a user's relay being up says nothing about the service's. */
  relaysConnected: new Gauge({
    name: `${P}_relays_connected`,
    help: 'Service relays (BUNKER_RELAYS) relay-ingest is connected to',
    registers: [registry],
  }),
  relaysKnown: new Gauge({
    name: `${P}_relays_known`,
    help: 'Service relays (BUNKER_RELAYS) relay-ingest tries to stay connected to',
    registers: [registry],
  }),
  userRelays: new Gauge({
    name: `${P}_user_relays`,
    help: "Users' own relays relay-ingest listens on (at most USER_RELAYS_TOTAL)",
    registers: [registry],
  }),
  bunkers: new Gauge({
    name: `${P}_nip46_bunkers`,
    help: 'Bunker pubkeys relay-ingest listens for',
    registers: [registry],
  }),
};
