// Schemas shared by several routes. Every route validates its input with a schema at the edge.
import { Type } from 'typebox';

export const ErrorBody = Type.Object({ error: Type.String() });
export const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' });
export const Password = Type.String({ minLength: 1, maxLength: 1024 });
/** A policy's slug, as stored (PostgreSQL text refuses NUL, so nothing else may reach a query). */
export const PolicySlug = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9_-]+$' });
export const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
export const Uuid = Type.String({ format: 'uuid', pattern: '^[0-9a-fA-F-]{36}$' });
export const RelayUrl = Type.String({ maxLength: 512, pattern: '^wss?://[^\\s]+$' });
