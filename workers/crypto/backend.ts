// Choosing the process's crypto backend at start: the choice is logged once and exported as a metric, so a
// farm that fell back to the slower WASM build (libsecp256k1-1 missing) shows it on its dashboards.
import type { Logger } from '../../shared/logger.js';
import { metrics } from '../../shared/metrics.js';
import {
  useCryptoBackend,
  type CryptoBackend,
  type CryptoBackendChoice,
  type CryptoBackendName,
  type CryptoBackendSelection,
} from '../../shared/nostr/crypto-backend.js';

const NAMES: CryptoBackendName[] = ['native', 'wasm'];

/** Throws when `native` is forced and the library cannot be loaded. */
export function startCryptoBackend(
  choice: CryptoBackendChoice,
  logger: Logger,
  use: (choice: CryptoBackendChoice) => CryptoBackendSelection = useCryptoBackend,
): CryptoBackend {
  const { backend, fallbackReason } = use(choice);
  for (const name of NAMES) metrics.cryptoBackend.set({ backend: name }, name === backend.name ? 1 : 0);
  if (fallbackReason !== undefined) {
    logger.warn(
      { backend: backend.name, reason: fallbackReason },
      'crypto backend: the native libsecp256k1 is unavailable; using its WASM build, about 5 times slower',
    );
  } else {
    logger.info({ backend: backend.name, library: backend.description, setting: choice }, 'crypto backend');
  }
  return backend;
}
