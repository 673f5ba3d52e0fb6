// The one shape of origin allowed into a response header (CSP form-action, a redirect's target):
// http(s), a DNS name or IP literal, an optional port, exactly as `new URL().origin` writes it. Hosts the
// URL parser accepts but a header must not carry (`;`, `,`, quotes, `*`, `_`, ...) are refused.
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DNS_NAME = `${LABEL}(?:\\.${LABEL})*`;
const IPV6 = '\\[[0-9a-f:.]+\\]';
const PORT = '(?::[1-9][0-9]{0,4})?';
const ORIGIN = new RegExp(`^https?://(?:${DNS_NAME}|${IPV6})${PORT}$`);

/** True when `origin` is a serialised http(s) origin with nothing a header could read as a separator. */
export function isWellFormedOrigin(origin: string): boolean {
  if (origin.length > 300 || !ORIGIN.test(origin)) return false;
  try {
    return new URL(origin).origin === origin;
  } catch {
    return false;
  }
}
