// KeyManager backed by a Cloud KMS symmetric key: wrap = Encrypt, unwrap = Decrypt, through the official
// gRPC client. Every request and response carries CRC32C integrity fields, checked on both sides.
//
// Retries are ours, not google-gax's: the client's default policy retries UNAVAILABLE for up to 10 minutes,
// which would hold a request far past its RPC timeout, so each call passes `retry: null` and a per-attempt
// deadline, and this module retries transient failures after 100, 200 and 400 ms.
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { GoogleAuth, grpc } from 'google-gax';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyManagerUnavailableError, type KeyManager } from './key-manager.js';
import { UnknownKekError, WrappedDekRejectedError } from './errors.js';
import { crc32c } from './crc32c.js';

const CRYPTO_KEY_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;

/** Authenticated data bound into every KMS ciphertext: a DEK wrapped by Keyfarm unwraps only as one. */
const KMS_AAD = Buffer.from('keyfarm:dek:v1', 'utf8');

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [100, 200, 400];

/** Failures worth another attempt: the service or the path to it is briefly unwell. */
const TRANSIENT_CODES = new Set<number>([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.INTERNAL,
  grpc.status.ABORTED,
  grpc.status.UNKNOWN,
]);

export interface GcpKeyManagerOptions {
  /** Full CryptoKey name (GCP_KMS_KEY); also the KEK id. */
  keyName: string;
  /**
   * "host:port" of a KMS speaking the same gRPC API without TLS (GCP_KMS_ENDPOINT: emulators, tests).
   * No Google credentials are looked up for it. Unset: Cloud KMS with Application Default Credentials.
   */
  endpoint?: string;
  /** Deadline of one attempt. */
  attemptTimeoutMs?: number;
  /** Waits before the 2nd, 3rd, ... attempt; attempts = delays + 1. */
  retryDelaysMs?: readonly number[];
}

/** A response that failed its CRC32C checks: discarded and retried, as Cloud KMS advises. */
class IntegrityError extends Error {
  constructor(what: string) {
    super(`Cloud KMS response failed integrity check: ${what}`);
    this.name = 'IntegrityError';
  }
}

interface GrpcLikeError extends Error {
  code?: number;
  details?: string;
}

export class GcpKeyManager implements KeyManager {
  readonly kind = 'gcp' as const;
  readonly kekId: string;
  readonly #client: KeyManagementServiceClient;
  readonly #attemptTimeoutMs: number;
  readonly #retryDelaysMs: readonly number[];

  constructor(opts: GcpKeyManagerOptions) {
    if (!CRYPTO_KEY_NAME.test(opts.keyName)) {
      throw new Error(`GCP KMS key must be projects/*/locations/*/keyRings/*/cryptoKeys/*, got ${opts.keyName}`);
    }
    this.kekId = opts.keyName;
    this.#attemptTimeoutMs = opts.attemptTimeoutMs ?? 2000;
    this.#retryDelaysMs = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.#client = opts.endpoint ? emulatorClient(opts.endpoint) : new KeyManagementServiceClient();
  }

  async wrap(dek: Uint8Array): Promise<Uint8Array> {
    const plaintext = Buffer.from(dek);
    try {
      return await this.#withRetries('encrypt', async () => {
        const [res] = await this.#client.encrypt(
          {
            name: this.kekId,
            plaintext,
            plaintextCrc32c: { value: crc32c(plaintext) },
            additionalAuthenticatedData: KMS_AAD,
            additionalAuthenticatedDataCrc32c: { value: crc32c(KMS_AAD) },
          },
          { retry: null, timeout: this.#attemptTimeoutMs },
        );
        if (!res.verifiedPlaintextCrc32c) throw new IntegrityError('plaintext checksum not verified');
        if (!res.verifiedAdditionalAuthenticatedDataCrc32c) throw new IntegrityError('AAD checksum not verified');
        const ciphertext = asBuffer(res.ciphertext);
        if (!checksumMatches(ciphertext, res.ciphertextCrc32c))
          throw new IntegrityError('ciphertext checksum mismatch');
        if (!res.name?.startsWith(`${this.kekId}/cryptoKeyVersions/`)) {
          throw new IntegrityError(`encrypted by ${res.name ?? 'an unnamed key'}, not ${this.kekId}`);
        }
        return ciphertext;
      });
    } finally {
      plaintext.fill(0);
    }
  }

  async unwrap(wrapped: Uint8Array, kekId: string): Promise<Uint8Array> {
    if (!CRYPTO_KEY_NAME.test(kekId)) {
      throw new UnknownKekError(kekId, `unknown KEK ${kekId}: not a Cloud KMS CryptoKey name`);
    }
    const ciphertext = Buffer.from(wrapped);
    return this.#withRetries('decrypt', async () => {
      const [res] = await this.#client
        .decrypt(
          {
            name: kekId,
            ciphertext,
            ciphertextCrc32c: { value: crc32c(ciphertext) },
            additionalAuthenticatedData: KMS_AAD,
            additionalAuthenticatedDataCrc32c: { value: crc32c(KMS_AAD) },
          },
          { retry: null, timeout: this.#attemptTimeoutMs },
        )
        .catch((err: GrpcLikeError) => {
          // Decrypt answers INVALID_ARGUMENT for a ciphertext that is not this key's (altered or foreign).
          if (err.code === grpc.status.INVALID_ARGUMENT) throw new WrappedDekRejectedError(kekId, { cause: err });
          throw err;
        });
      const plaintext = asBuffer(res.plaintext);
      if (!checksumMatches(plaintext, res.plaintextCrc32c)) {
        plaintext.fill(0);
        throw new IntegrityError('plaintext checksum mismatch');
      }
      return plaintext;
    });
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async #withRetries<T>(op: 'encrypt' | 'decrypt', attempt: () => Promise<T>): Promise<T> {
    const attempts = this.#retryDelaysMs.length + 1;
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (err instanceof WrappedDekRejectedError) throw err;
        const transient = isTransient(err);
        if (!transient || i === attempts - 1) {
          throw new KeyManagerUnavailableError(
            transient
              ? `Cloud KMS ${op} failed after ${attempts} attempts: ${describe(err)}`
              : `Cloud KMS refused ${op}: ${describe(err)}`,
            { cause: err },
          );
        }
        await sleep(this.#retryDelaysMs[i]);
      }
    }
  }
}

/**
 * A client for a KMS at "host:port" over plaintext gRPC. `sslCreds` replaces the channel credentials
 * (gax then skips its Google auth entirely); the GoogleAuth below is given a universe domain so gax's
 * universe check needs no credentials, and it refuses to find any, so nothing reaches for ADC or the
 * metadata server.
 */
function emulatorClient(endpoint: string): KeyManagementServiceClient {
  const { host, port } = parseHostPort(endpoint);
  return new KeyManagementServiceClient({
    servicePath: host,
    port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
    auth: new NoCredentialsAuth({ universeDomain: 'googleapis.com' }),
  });
}

class NoCredentialsAuth extends GoogleAuth {
  override async getClient(): Promise<never> {
    throw new Error('GCP_KMS_ENDPOINT is set: no Google credentials are used');
  }
}

export function parseHostPort(endpoint: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(endpoint);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`GCP_KMS_ENDPOINT must be host:port, got ${endpoint}`);
  return { host: (m[1] ?? m[2])!, port };
}

function isTransient(err: unknown): boolean {
  if (err instanceof IntegrityError) return true;
  const code = (err as GrpcLikeError | undefined)?.code;
  // No gRPC status at all: the call never got an answer (auth token fetch, socket), so try again.
  return typeof code !== 'number' || TRANSIENT_CODES.has(code);
}

function describe(err: unknown): string {
  const e = err as GrpcLikeError;
  if (typeof e?.code === 'number') return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`;
  return e instanceof Error ? e.message : String(err);
}

function asBuffer(value: Uint8Array | string | null | undefined): Buffer {
  if (value == null) return Buffer.alloc(0);
  return typeof value === 'string'
    ? Buffer.from(value, 'base64')
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function checksumMatches(data: Uint8Array, field: { value?: unknown } | null | undefined): boolean {
  if (field?.value == null) return false;
  return Number(String(field.value)) === crc32c(data);
}
