// Wraps a KeyManager so every wrap/unwrap is counted and timed in the process's metrics registry.
import { metrics } from '../metrics.js';
import { KeyManagerUnavailableError, type KeyManager } from './key-manager.js';

type Op = 'wrap' | 'unwrap';

/** "ok", "unavailable" (the caller answers 503) or "error" (the KEK refused the input). */
function outcomeOf(err: unknown): string {
  return err instanceof KeyManagerUnavailableError ? 'unavailable' : 'error';
}

async function measure<T>(op: Op, call: () => Promise<T>): Promise<T> {
  const stop = metrics.keyManagerDuration.startTimer({ op });
  try {
    const result = await call();
    metrics.keyManagerCalls.inc({ op, outcome: 'ok' });
    return result;
  } catch (err) {
    metrics.keyManagerCalls.inc({ op, outcome: outcomeOf(err) });
    throw err;
  } finally {
    stop();
  }
}

export function instrumentKeyManager(km: KeyManager): KeyManager {
  return {
    get kind() {
      return km.kind;
    },
    get kekId() {
      return km.kekId;
    },
    wrap: (dek) => measure('wrap', () => km.wrap(dek)),
    unwrap: (wrapped, kekId) => measure('unwrap', () => km.unwrap(wrapped, kekId)),
    close: () => km.close(),
  };
}
