import { useEffect, useState } from "react";
import { AdminPage } from "./admin/AdminPage";
import { PatientPage } from "./patient/PatientPage";

type Route = "patient" | "admin";

function currentRoute(): Route {
  return window.location.hash.startsWith("#/admin") ? "admin" : "patient";
}

export function App() {
  const [route, setRoute] = useState<Route>(currentRoute);
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    document.title = route === "admin" ? "Command center · OR Flow" : "Book surgery · OR Flow";
  }, [route]);
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
          <a href="#/" aria-current={route === "patient" ? "page" : undefined}>
            Patient portal
          </a>
          <a href="#/admin" aria-current={route === "admin" ? "page" : undefined}>
            Command center
          </a>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {route === "admin" ? <AdminPage /> : <PatientPage />}
      </main>
    </>
  );
}
