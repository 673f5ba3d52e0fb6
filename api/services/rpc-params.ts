// Turns an RPC request's {method, params} into a validated RpcCall, or a 400 naming what is wrong.
import type { RpcCall, RpcMethod } from '../../shared/farm/jobs.js';
import { EventValidationError, validateUnsignedEvent } from '../../shared/nostr/event.js';
import { isValidPubkeyHex } from '../../shared/nostr/keys.js';
import { badRequest } from '../errors.js';

export const RPC_METHODS: readonly RpcMethod[] = [
  'get_public_key', 'sign_event', 'nip44_encrypt', 'nip44_decrypt', 'nip04_encrypt', 'nip04_decrypt', 'ping',
];

/** Largest plaintext or ciphertext accepted (the body limit caps it too). */
const MAX_TEXT = 512 * 1024;

function peerAndText(method: string, params: unknown[]): [string, string] {
  const [peer, text] = params;
  if (typeof peer !== 'string' || !isValidPubkeyHex(peer)) throw badRequest(`${method}: params[0] must be a peer pubkey (64 hex)`);
  if (typeof text !== 'string') throw badRequest(`${method}: params[1] must be a string`);
  if (text.length > MAX_TEXT) throw badRequest(`${method}: params[1] is too long`);
  return [peer, text];
}

export function parseRpcCall(method: RpcMethod, params: unknown[]): RpcCall {
  switch (method) {
    case 'get_public_key':
    case 'ping':
      return { method };
    case 'sign_event': {
      if (params.length < 1) throw badRequest('sign_event: params[0] must be the event');
      try {
        return { method, event: validateUnsignedEvent(params[0]) };
      } catch (err) {
        if (err instanceof EventValidationError) throw badRequest(`sign_event: ${err.message}`);
        throw err;
      }
    }
    case 'nip44_encrypt':
    case 'nip04_encrypt': {
      const [peer, plaintext] = peerAndText(method, params);
      if (method === 'nip44_encrypt' && plaintext.length === 0) throw badRequest('nip44_encrypt: plaintext must not be empty');
      return { method, peer, plaintext };
    }
    case 'nip44_decrypt':
    case 'nip04_decrypt': {
      const [peer, ciphertext] = peerAndText(method, params);
      return { method, peer, ciphertext };
    }
  }
}
