import { lazy, Suspense, useEffect, useState } from "react";
import { PatientPage } from "./patient/PatientPage";
import { signOut, useAuth, SIGN_IN_ROUTE } from "./session";

// The patient page is the landing page: everything else loads on first visit, so a phone parses less first.
const AdminPage = lazy(() => import("./admin/AdminPage").then((m) => ({ default: m.AdminPage })));
const MyBookingsPage = lazy(() => import("./patient/MyBookings").then((m) => ({ default: m.MyBookingsPage })));
const SignInPage = lazy(() => import("./SignIn").then((m) => ({ default: m.SignInPage })));

type Route = "patient" | "bookings" | "admin" | "sign-in";

const TITLES: Record<Route, string> = {
  patient: "Book surgery",
  bookings: "My bookings",
  admin: "Command center",
  "sign-in": "Sign in",
};

function currentRoute(): Route {
  const hash = window.location.hash;
  if (hash.startsWith("#/admin")) return "admin";
  if (hash.startsWith("#/my-bookings")) return "bookings";
  if (hash.startsWith(SIGN_IN_ROUTE)) return "sign-in";
  return "patient";
}

export function App() {
  const [route, setRoute] = useState<Route>(currentRoute);
  const { session } = useAuth();
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    document.title = `${TITLES[route]} · OR Flow`;
  }, [route]);
  const current = (r: Route) => (route === r ? "page" : undefined);
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">
            +
          </span>
          OR Flow
        </div>
        <nav aria-label="Sections">
          <a href="#/" aria-current={current("patient")}>
            Patient portal
          </a>
          {session?.role === "patient" && (
            <a href="#/my-bookings" aria-current={current("bookings")}>
              My bookings
            </a>
          )}
          <a href="#/admin" aria-current={current("admin")}>
            Command center
          </a>
        </nav>
        <div className="who">
          {session ? (
            <>
              <span className="who-name">
                Signed in as {session.role === "patient" ? `patient ${session.subject}` : `${session.role} ${session.subject}`}
              </span>
              <button type="button" className="button topbar-button" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : (
            <a className="button topbar-button" href={SIGN_IN_ROUTE} aria-current={current("sign-in")}>
              Sign in
            </a>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p className="page muted">Loading…</p>}>
          {route === "admin" && <AdminPage />}
          {route === "bookings" && <MyBookingsPage />}
          {route === "sign-in" && <SignInPage />}
          {route === "patient" && <PatientPage />}
        </Suspense>
      </main>
    </>
  );
}
