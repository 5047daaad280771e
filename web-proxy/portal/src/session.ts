// Who is signed in: the bearer token (kept in sessionStorage, so it ends with the tab) and what it says.
// The claims are read only to show a name and pick pages; the server verifies every token on every call.
import { useSyncExternalStore } from "react";

export type Role = "patient" | "service" | "admin";

export interface Session {
  token: string;
  role: Role;
  subject: string;
  /** Milliseconds since the epoch when the token stops working. */
  expiresAt: number;
}

export interface Notice {
  text: string;
  tone: "info" | "alert";
}

interface State {
  session: Session | null;
  notice: Notice | null;
  /** The page to return to after signing in. */
  returnTo: string;
}

const KEY = "orflow.session";
export const EXPIRED = "Your session has expired — please sign in again.";
export const SIGN_IN_ROUTE = "#/sign-in";

/** Role, subject and expiry from a JWT's payload, or null if it does not look like one of ours. */
export function readToken(token: string): Session | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims !== "object" || claims === null) return null;
    const { role, sub, exp } = claims as Record<string, unknown>;
    if ((role !== "patient" && role !== "service" && role !== "admin") || typeof sub !== "string" || typeof exp !== "number") {
      return null;
    }
    return { token: token.trim(), role, subject: sub, expiresAt: exp * 1000 };
  } catch {
    return null;
  }
}

function load(): State {
  const session = readToken(sessionStorage.getItem(KEY) ?? "");
  if (session && session.expiresAt > Date.now()) return { session, notice: null, returnTo: "" };
  if (session) sessionStorage.removeItem(KEY);
  return { session: null, notice: session ? { text: EXPIRED, tone: "alert" } : null, returnTo: "" };
}

let state: State = load();
const listeners = new Set<() => void>();

function update(next: Partial<State>) {
  state = { ...state, ...next };
  listeners.forEach((listener) => listener());
}

function subscribe(listener: () => void) {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

export function useAuth(): State {
  return useSyncExternalStore(subscribe, () => state);
}

/** The token to send, or "" when signed out (an expired token is dropped at once). */
export function currentToken(): string {
  if (state.session && state.session.expiresAt <= Date.now()) expireSession();
  return state.session?.token ?? "";
}

export function signIn(session: Session) {
  sessionStorage.setItem(KEY, session.token);
  const back = state.returnTo;
  update({ session, notice: null, returnTo: "" });
  window.location.hash = back || (session.role === "admin" ? "#/admin" : "#/");
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  update({ session: null, notice: { text: "You are signed out.", tone: "info" }, returnTo: "" });
}

/** Sends the visitor to the sign-in page saying why, and back to `returnTo` afterwards. */
export function askToSignIn(text: string, returnTo = window.location.hash, tone: Notice["tone"] = "info") {
  update({ notice: { text, tone }, returnTo: returnTo === SIGN_IN_ROUTE ? "" : returnTo });
  window.location.hash = SIGN_IN_ROUTE;
}

/** The server refused the token (expired, revoked, or signed by another key): sign out and say so. */
export function expireSession() {
  sessionStorage.removeItem(KEY);
  state = { ...state, session: null };
  askToSignIn(EXPIRED, window.location.hash, "alert");
}
