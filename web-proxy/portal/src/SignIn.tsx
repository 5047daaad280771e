// Sign-in: patients by id through the proxy's development-only endpoint (when it is on) or with a
// token from the hospital's sign-in; administrators with an admin token, checked by the server first.
import { useEffect, useState, type FormEvent } from "react";
import { Code, ConnectError } from "@connectrpc/connect";
import { adminClient, bookingClient } from "./api";
import { friendlyError } from "./errors";
import { readToken, signIn, useAuth, type Role } from "./session";

const DEV_SIGN_IN = "/dev/sign-in";

/** Whether the proxy offers sign-in by patient id (null while asking). */
function useDevSignIn(): boolean | null {
  const [enabled, setEnabled] = useState<boolean | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    fetch(DEV_SIGN_IN, { signal: abort.signal })
      .then((r): Promise<{ enabled?: boolean }> => (r.ok ? r.json() : Promise.resolve({})))
      .then((body) => setEnabled(body.enabled === true), () => !abort.signal.aborted && setEnabled(false));
    return () => abort.abort();
  }, []);
  return enabled;
}

export function SignInPage() {
  const { notice, session } = useAuth();
  const devEnabled = useDevSignIn();
  return (
    <div className="page">
      <section className="intro" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in</h1>
        <p className="muted">Browsing free slots needs no sign-in. To book, or to open the command center, sign in.</p>
      </section>
      {notice && (
        <div className={`alert ${notice.tone === "alert" ? "alert-error" : "alert-info"}`} role={notice.tone === "alert" ? "alert" : "status"}>
          {notice.text}
        </div>
      )}
      {session && !notice && (
        <p className="alert alert-info" role="status">
          {`You are signed in as ${session.role} ${session.subject}. Signing in again replaces this session.`}
        </p>
      )}
      <div className="grid-2">
        <section className="panel" aria-labelledby="patient-sign-in-title">
          <h2 id="patient-sign-in-title">Patients</h2>
          {devEnabled === null ? (
            <p className="muted">Checking how to sign in…</p>
          ) : devEnabled ? (
            <PatientIdForm />
          ) : (
            <>
              <p>Your hospital's sign-in issues your token. Paste it here to book and see your bookings.</p>
              <TokenForm role="patient" />
            </>
          )}
        </section>
        <section className="panel" aria-labelledby="staff-sign-in-title">
          <h2 id="staff-sign-in-title">Hospital administrators</h2>
          <p>Enter your admin token to open the command center.</p>
          <TokenForm role="admin" />
        </section>
      </div>
    </div>
  );
}

function PatientIdForm() {
  const [patientId, setPatientId] = useState("");
  const [error, setError] = useState("");
  const [working, setWorking] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const id = patientId.trim();
    if (!id) return setError("Enter your patient ID.");
    setWorking(true);
    setError("");
    try {
      const reply = await fetch(DEV_SIGN_IN, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ patient_id: id }),
      });
      const body = (await reply.json().catch(() => ({}))) as { token?: string; error?: string };
      const session = body.token ? readToken(body.token) : null;
      if (!reply.ok || !session) throw new Error(body.error ?? "sign-in is not available");
      signIn(session);
    } catch (err) {
      setError(`We could not sign you in: ${err instanceof Error ? err.message : "please try again"}.`);
    } finally {
      setWorking(false);
    }
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate>
      <div className="field">
        <label htmlFor="sign-in-patient-id">Patient ID (MRN)</label>
        <input
          id="sign-in-patient-id"
          value={patientId}
          onChange={(e) => setPatientId(e.target.value)}
          placeholder="e.g. MRN-1001"
          autoComplete="username"
          maxLength={64}
          aria-invalid={Boolean(error)}
          aria-describedby={error ? "sign-in-patient-error" : "dev-sign-in-note"}
        />
        {error && (
          <p className="field-error" id="sign-in-patient-error" role="alert">
            {error}
          </p>
        )}
      </div>
      <button type="submit" className="button primary" disabled={working}>
        Sign in as this patient
      </button>
      <p className="muted small" id="dev-sign-in-note">
        Development sign-in: any patient ID is accepted. A hospital deployment turns this off and issues tokens from its
        own sign-in.
      </p>
    </form>
  );
}

const TOKEN_WORDS: Record<"patient" | "admin", { label: string; button: string }> = {
  patient: { label: "Your token", button: "Sign in with this token" },
  admin: { label: "Admin token", button: "Sign in as administrator" },
};

/** A pasted token, checked by the server before it is kept: an admin token must open an admin call. */
export function TokenForm(props: { role: "patient" | "admin" }) {
  const { role } = props;
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [working, setWorking] = useState(false);
  const id = `token-${role}`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError("");
    const session = readToken(token);
    if (!session) return setError("That is not a token: paste the whole text you were given (it starts with “ey”).");
    if (session.expiresAt <= Date.now()) return setError("That token has expired — ask for a new one.");
    if (role === "patient" && session.role !== "patient") {
      return setError("That is a staff token: administrators sign in on the right.");
    }
    setWorking(true);
    try {
      const options = { headers: { Authorization: `Bearer ${session.token}` }, timeoutMs: 10_000 };
      if (role === "admin") await adminClient.listRooms({}, options);
      else await bookingClient.listPatientBookings({ pageSize: 1 }, options);
      signIn(session);
    } catch (err) {
      setError(refusal(err, session.role));
    } finally {
      setWorking(false);
    }
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate>
      <div className="field">
        <label htmlFor={id}>{TOKEN_WORDS[role].label}</label>
        <input
          id={id}
          type="password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          autoComplete="off"
          spellCheck={false}
          aria-invalid={Boolean(error)}
          aria-describedby={error ? `${id}-error` : undefined}
        />
        {error && (
          <p className="field-error" id={`${id}-error`} role="alert">
            {error}
          </p>
        )}
      </div>
      <button type="submit" className="button primary" disabled={working}>
        {TOKEN_WORDS[role].button}
      </button>
    </form>
  );
}

function refusal(err: unknown, claimed: Role): string {
  const code = ConnectError.from(err).code;
  if (code === Code.PermissionDenied) {
    return `That is a ${claimed}'s token, not an administrator's: the command center needs an admin token.`;
  }
  if (code === Code.Unauthenticated) return "That token was not accepted: it may have expired or come from elsewhere.";
  return friendlyError(err).message;
}
