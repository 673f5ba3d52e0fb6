// The one spelling of a relay URL that Keyfarm stores, compares and connects to.

/** One spelling per relay: lower-case scheme and host, no trailing slash on an empty path. */
export function normalizeRelayUrl(url: string): string | undefined {
  try {
    const u = new URL(url.trim());
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return undefined;
    u.hash = '';
    const s = u.toString();
    return u.pathname === '/' && !u.search ? s.replace(/\/$/, '') : s;
  } catch {
    return undefined;
  }
}

/** A relay URL fit for a log line: any user name or password it carries is left out. */
export function relayForLog(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}
