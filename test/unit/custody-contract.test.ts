import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalKeyManager } from '../../shared/custody/local-key-manager.js';
import { keyManagerContract } from '../support/key-manager-contract.js';

keyManagerContract('LocalKeyManager', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kf-custody-contract-'));
  const km = await LocalKeyManager.open(path.join(dir, 'master.key'));
  return {
    km,
    cleanup: async () => {
      await km.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
