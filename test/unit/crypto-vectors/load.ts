// Loads the conformance vectors from the source tree (tests run from dist/, the vectors are not copied).
import { readFileSync } from 'node:fs';

const DIR = new URL('../../../../test/unit/crypto-vectors/', import.meta.url);

export function readVectorFile(name: string): string {
  return readFileSync(new URL(name, DIR), 'utf8');
}

export interface Nip44Vectors {
  v2: {
    valid: {
      get_conversation_key: { sec1: string; pub2: string; conversation_key: string }[];
      get_message_keys: {
        conversation_key: string;
        keys: { nonce: string; chacha_key: string; chacha_nonce: string; hmac_key: string }[];
      };
      calc_padded_len: [number, number][];
      encrypt_decrypt: {
        sec1: string;
        sec2: string;
        conversation_key: string;
        nonce: string;
        plaintext: string;
        payload: string;
      }[];
      encrypt_decrypt_long_msg: {
        conversation_key: string;
        nonce: string;
        pattern: string;
        repeat: number;
        plaintext_sha256: string;
        payload_sha256: string;
      }[];
    };
    invalid: {
      encrypt_msg_lengths: number[];
      get_conversation_key: { sec1: string; pub2: string; note: string }[];
      decrypt: { conversation_key: string; nonce: string; plaintext: string; payload: string; note: string }[];
    };
  };
}

export function nip44Vectors(): Nip44Vectors {
  return JSON.parse(readVectorFile('nip44.vectors.json')) as Nip44Vectors;
}

export interface Bip340Row {
  index: number;
  secretKey: string;
  publicKey: string;
  auxRand: string;
  message: string;
  signature: string;
  valid: boolean;
  comment: string;
}

export function bip340Vectors(): Bip340Row[] {
  const lines = readVectorFile('bip340.schnorr.csv').trim().split('\n').slice(1);
  return lines.map((line) => {
    const [index, secretKey, publicKey, auxRand, message, signature, result, comment] = line.trim().split(',');
    return {
      index: Number(index),
      secretKey: secretKey ?? '',
      publicKey: publicKey ?? '',
      auxRand: auxRand ?? '',
      message: message ?? '',
      signature: signature ?? '',
      valid: result === 'TRUE',
      comment: comment ?? '',
    };
  });
}
