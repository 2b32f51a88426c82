/**
 * The admin token, kept in sessionStorage: it lives as long as the tab, is never written into a
 * URL, and is gone when the tab closes or the user signs out.
 */
const KEY = "agentgate.adminToken";

export function storedToken(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
