// A local stand-in for Cloud KMS: a plaintext gRPC server implementing
// google.cloud.kms.v1.KeyManagementService Encrypt and Decrypt from the .proto files that ship with
// @google-cloud/kms, so the real client is exercised end to end without network access to Google.
//
// Each CryptoKey name gets its own AES-256-GCM key on first use. A ciphertext names the key version that
// made it (as real KMS ciphertexts do), so decrypting under another key fails like the real service:
// INVALID_ARGUMENT. CRC32C integrity fields are checked and returned as Cloud KMS documents them.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { GrpcClient, grpc } from 'google-gax';
import { crc32c } from '../../shared/custody/crc32c.js';

const CRYPTO_KEY_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export type KmsMethod = 'encrypt' | 'decrypt';

export interface FakeKmsCall {
  method: KmsMethod;
  /** performance.now() when the request arrived. */
  at: number;
  /** The gRPC status the fake answered with (0 = OK). */
  code: number;
}

export interface FakeKms {
  /** "127.0.0.1:<port>", for GCP_KMS_ENDPOINT. */
  endpoint: string;
  /** Every request received, in order, failed ones included. */
  readonly calls: readonly FakeKmsCall[];
  /** Number of requests received, optionally of one method. */
  callCount(method?: KmsMethod): number;
  /** The next `n` requests fail with `code` (default UNAVAILABLE) before doing anything. */
  failNext(n: number, code?: grpc.status): void;
  /** The next successful response carries a wrong CRC32C, as a corrupted response would. */
  corruptNextChecksum(): void;
  resetCalls(): void;
  /** Stops serving, as an outage would (clients get connection refused); the keys are kept. */
  stop(): Promise<void>;
  /** Serves again on the same port with the same keys. */
  start(): Promise<void>;
  close(): Promise<void>;
}

interface Int64Value {
  value?: string | number | null;
}

interface EncryptRequest {
  name: string;
  plaintext: Buffer;
  additionalAuthenticatedData: Buffer;
  plaintextCrc32c: Int64Value | null;
  additionalAuthenticatedDataCrc32c: Int64Value | null;
}

interface DecryptRequest {
  name: string;
  ciphertext: Buffer;
  additionalAuthenticatedData: Buffer;
  ciphertextCrc32c: Int64Value | null;
  additionalAuthenticatedDataCrc32c: Int64Value | null;
}

class KmsStatus extends Error {
  constructor(
    readonly code: grpc.status,
    details: string,
  ) {
    super(details);
  }
}

function loadServiceDefinition(): grpc.ServiceDefinition {
  const require = createRequire(import.meta.url);
  const protos = path.join(path.dirname(require.resolve('@google-cloud/kms/package.json')), 'build', 'protos');
  const loaded = new GrpcClient().loadProto(protos, 'google/cloud/kms/v1/service.proto') as Record<string, any>;
  return loaded.google.cloud.kms.v1.KeyManagementService.service as grpc.ServiceDefinition;
}

function checksumOk(data: Buffer, field: Int64Value | null): boolean {
  return field?.value == null || Number(field.value) === crc32c(data);
}

export async function startFakeKms(): Promise<FakeKms> {
  const keys = new Map<string, Buffer>();
  const calls: FakeKmsCall[] = [];
  let failures = 0;
  let failureCode: grpc.status = grpc.status.UNAVAILABLE;
  let corruptNext = false;

  const keyFor = (name: string): Buffer => {
    let key = keys.get(name);
    if (!key) keys.set(name, (key = randomBytes(32)));
    return key;
  };

  // Ciphertext: u16 length, key version name, nonce, AES-GCM body, tag. The header is authenticated too.
  function encrypt(req: EncryptRequest) {
    if (!CRYPTO_KEY_NAME.test(req.name)) throw new KmsStatus(grpc.status.INVALID_ARGUMENT, 'name is not a CryptoKey');
    if (!checksumOk(req.plaintext, req.plaintextCrc32c))
      throw new KmsStatus(grpc.status.INVALID_ARGUMENT, 'plaintext checksum mismatch');
    if (!checksumOk(req.additionalAuthenticatedData, req.additionalAuthenticatedDataCrc32c)) {
      throw new KmsStatus(grpc.status.INVALID_ARGUMENT, 'additional authenticated data checksum mismatch');
    }
    const version = `${req.name}/cryptoKeyVersions/1`;
    const nameBytes = Buffer.from(version, 'utf8');
    const header = Buffer.concat([Buffer.from([nameBytes.length >> 8, nameBytes.length & 0xff]), nameBytes]);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', keyFor(req.name), nonce);
    cipher.setAAD(Buffer.concat([header, req.additionalAuthenticatedData]));
    const ciphertext = Buffer.concat([
      header,
      nonce,
      cipher.update(req.plaintext),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return {
      name: version,
      ciphertext,
      ciphertextCrc32c: { value: crc32c(ciphertext) },
      verifiedPlaintextCrc32c: req.plaintextCrc32c?.value != null,
      verifiedAdditionalAuthenticatedDataCrc32c: req.additionalAuthenticatedDataCrc32c?.value != null,
      protectionLevel: 'SOFTWARE',
    };
  }

  function decrypt(req: DecryptRequest) {
    const invalid = () => new KmsStatus(grpc.status.INVALID_ARGUMENT, 'Decryption failed: the ciphertext is invalid.');
    if (!CRYPTO_KEY_NAME.test(req.name)) throw new KmsStatus(grpc.status.INVALID_ARGUMENT, 'name is not a CryptoKey');
    if (!checksumOk(req.ciphertext, req.ciphertextCrc32c))
      throw new KmsStatus(grpc.status.INVALID_ARGUMENT, 'ciphertext checksum mismatch');
    const key = keys.get(req.name);
    if (!key) throw new KmsStatus(grpc.status.NOT_FOUND, `CryptoKey ${req.name} not found.`);
    const ct = req.ciphertext;
    if (ct.length < 2) throw invalid();
    const headerLength = 2 + ((ct[0]! << 8) | ct[1]!);
    if (ct.length < headerLength + NONCE_BYTES + TAG_BYTES) throw invalid();
    const header = ct.subarray(0, headerLength);
    if (!header.subarray(2).toString('utf8').startsWith(`${req.name}/cryptoKeyVersions/`)) throw invalid();
    const decipher = createDecipheriv('aes-256-gcm', key, ct.subarray(headerLength, headerLength + NONCE_BYTES));
    decipher.setAAD(Buffer.concat([header, req.additionalAuthenticatedData]));
    decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([
        decipher.update(ct.subarray(headerLength + NONCE_BYTES, ct.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw invalid();
    }
    return { plaintext, plaintextCrc32c: { value: crc32c(plaintext) }, usedPrimary: true, protectionLevel: 'SOFTWARE' };
  }

  function handler<Req, Res extends Record<string, unknown>>(
    method: KmsMethod,
    run: (req: Req) => Res,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const record: FakeKmsCall = { method, at: performance.now(), code: grpc.status.OK };
      calls.push(record);
      try {
        if (failures > 0) {
          failures--;
          throw new KmsStatus(failureCode, `injected ${grpc.status[failureCode]}`);
        }
        const res = run(call.request);
        if (corruptNext) {
          corruptNext = false;
          const field = method === 'encrypt' ? 'ciphertextCrc32c' : 'plaintextCrc32c';
          const crc = Number((res[field] as Int64Value).value);
          (res as Record<string, unknown>)[field] = { value: (crc ^ 1) >>> 0 };
        }
        callback(null, res);
      } catch (err) {
        const status = err instanceof KmsStatus ? err : new KmsStatus(grpc.status.INTERNAL, 'fake KMS failed');
        record.code = status.code;
        callback({ code: status.code, details: status.message });
      }
    };
  }

  const service = loadServiceDefinition();
  let server: grpc.Server | undefined;
  const listen = async (at: number): Promise<number> => {
    const s = new grpc.Server();
    s.addService(service, {
      Encrypt: handler('encrypt', encrypt),
      Decrypt: handler('decrypt', decrypt),
    });
    const bound = await new Promise<number>((resolve, reject) => {
      s.bindAsync(`127.0.0.1:${at}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      );
    });
    server = s;
    return bound;
  };
  // Clients may still hold channels open; a test server does not wait for them.
  const stop = async () => {
    server?.forceShutdown();
    server = undefined;
  };
  const port = await listen(0);

  return {
    endpoint: `127.0.0.1:${port}`,
    calls,
    callCount: (method) => (method ? calls.filter((c) => c.method === method).length : calls.length),
    failNext(n, code = grpc.status.UNAVAILABLE) {
      failures = n;
      failureCode = code;
    },
    corruptNextChecksum() {
      corruptNext = true;
    },
    resetCalls() {
      calls.length = 0;
    },
    stop,
    async start() {
      if (!server) await listen(port);
    },
    async close() {
      await stop();
      for (const key of keys.values()) key.fill(0);
    },
  };
}
