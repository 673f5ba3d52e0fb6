// Turns a request's {method, params} into a validated RpcCall, the same on both doors (the HTTP route
// answers 400 with the message; the NIP-46 processor answers the request with it as its error).
import { EventValidationError, validateUnsignedEvent } from '../nostr/event.js';
import { isValidPubkeyHex } from '../nostr/keys.js';
import type { RpcCall, RpcMethod } from './jobs.js';

export const RPC_METHODS: readonly RpcMethod[] = [
  'get_public_key',
  'sign_event',
  'nip44_encrypt',
  'nip44_decrypt',
  'nip04_encrypt',
  'nip04_decrypt',
  'ping',
];

/** Largest plaintext or ciphertext accepted, in characters (the HTTP body limit and the relays' event size cap it too). */
export const MAX_TEXT = 512 * 1024;

/** The parameters do not fit the method; the message names what is wrong. */
export class RpcParamsError extends Error {
  override readonly name = 'RpcParamsError';
}

function peerAndText(method: string, params: readonly unknown[]): [string, string] {
  const [peer, text] = params;
  if (typeof peer !== 'string' || !isValidPubkeyHex(peer))
    throw new RpcParamsError(`${method}: params[0] must be a peer pubkey (64 hex)`);
  if (typeof text !== 'string') throw new RpcParamsError(`${method}: params[1] must be a string`);
  if (text.length > MAX_TEXT) throw new RpcParamsError(`${method}: params[1] is too long`);
  return [peer, text];
}

/** Throws RpcParamsError when the parameters do not fit the method. */
export function parseRpcCall(method: RpcMethod, params: readonly unknown[]): RpcCall {
  switch (method) {
    case 'get_public_key':
    case 'ping':
      return { method };
    case 'sign_event': {
      if (params.length < 1) throw new RpcParamsError('sign_event: params[0] must be the event');
      try {
        return { method, event: validateUnsignedEvent(params[0]) };
      } catch (err) {
        if (err instanceof EventValidationError) throw new RpcParamsError(`sign_event: ${err.message}`);
        throw err;
      }
    }
    case 'nip44_encrypt':
    case 'nip04_encrypt': {
      const [peer, plaintext] = peerAndText(method, params);
      // NIP-44 v2 defines no payload for an empty message (its length prefix starts at 1).
      if (method === 'nip44_encrypt' && plaintext.length === 0)
        throw new RpcParamsError('nip44_encrypt: plaintext must not be empty');
      return { method, peer, plaintext };
    }
    case 'nip44_decrypt':
    case 'nip04_decrypt': {
      const [peer, ciphertext] = peerAndText(method, params);
      return { method, peer, ciphertext };
    }
  }
}
