/**
 * `scheme://user:password@` anywhere in a text. The password runs to the last `@` after it:
 * a password with a raw `@` in it is hidden whole, at the cost of hiding more than it.
 */
const CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s]*@/gi;

/**
 * The text with the password of every URL in it replaced by `***`
 * (`postgres://user:***@host/db`), whether or not the URL parses.
 */
export function redactPasswords(text: string): string {
  return text.replace(CREDENTIALS, '$1***@');
}

/** `host:port` of a URL (`defaultPort` when it names none), for messages; never its credentials. */
export function hostAndPort(url: string, defaultPort: number): string {
  try {
    const { hostname, port } = new URL(url);
    return hostname === '' ? '(no host)' : `${hostname}:${port === '' ? defaultPort : port}`;
  } catch {
    return '(unparseable URL)';
  }
}
