// The dashboard shell: who is signed in, the header, and which page a path shows.
import type { User } from "@meshai/client";
import { useEffect, useState } from "preact/hooks";

import { api } from "../shared/api";
import { navigate, Link, match, useLocation } from "../shared/router";
import { clearSession, onSessionChange, sessionToken } from "../shared/session";
import { ErrorBanner, Spinner, useAsync } from "../shared/ui";
import { AccountPage } from "./pages/account";
import { InvitePage } from "./pages/invite";
import { NetworkPage } from "./pages/network";
import { NetworksPage } from "./pages/networks";
import { MagicLinkLanding, OidcLanding, SignInPage } from "./pages/signin";

export function App() {
  const location = useLocation();
  const [token, setToken] = useState(sessionToken());
  useEffect(() => onSessionChange(() => setToken(sessionToken())), []);

  if (location.path === "/signin/magic") return <MagicLinkLanding query={location.query} />;
  if (location.path === "/signin/oidc") return <OidcLanding query={location.query} />;
  if (!token || location.path === "/signin") {
    const next = location.path === "/signin" ? (location.query.get("next") ?? "/") : location.path + window.location.search;
    return <SignInPage next={next} />;
  }
  return <SignedIn key={token} />;
}

function SignedIn() {
  const location = useLocation();
  const me = useAsync(() => api().identity.getCurrentUser({}).then((r) => r.user), []);
  if (me.loading && !me.data) return <Spinner label="Signing in" />;
  if (!me.data) {
    return (
      <main class="page narrow">
        <ErrorBanner error={me.error} onRetry={me.reload} />
      </main>
    );
  }
  return (
    <>
      <Header user={me.data} />
      <Routes path={location.path} query={location.query} user={me.data} />
    </>
  );
}

function Routes({ path, query, user }: { path: string; query: URLSearchParams; user: User }) {
  if (path === "/" || path === "/networks") return <NetworksPage />;
  if (path === "/account" || path === "/approve") return <AccountPage user={user} code={query.get("code") ?? ""} />;
  if (path === "/invite") return <InvitePage token={query.get("token") ?? ""} />;
  const network = match("/networks/:id/:tab?/:item?", path);
  if (network?.id) return <NetworkPage networkId={network.id} tab={network.tab ?? "devices"} item={network.item} user={user} />;
  return (
    <main class="page narrow">
      <h1>Page not found</h1>
      <p>
        <Link href="/">Back to your networks</Link>
      </p>
    </main>
  );
}

function Header({ user }: { user: User }) {
  const [open, setOpen] = useState(false);
  return (
    <header class="topbar">
      <Link href="/" class="brand" aria-label="MeshAI home">
        <img src="/favicon.svg" alt="" width="28" height="28" />
        <span>MeshAI</span>
      </Link>
      <div class="topbar-spacer" />
      <div class="menu">
        <button type="button" class="avatar" aria-haspopup="menu" aria-expanded={open} aria-label={`Account menu for ${user.email}`} onClick={() => setOpen(!open)}>
          {(user.displayName || user.email).slice(0, 1).toUpperCase()}
        </button>
        {open && (
          <div class="menu-list" role="menu" onClick={() => setOpen(false)}>
            <div class="menu-who">
              <strong>{user.displayName || user.username}</strong>
              <span>{user.email}</span>
            </div>
            <a role="menuitem" href="/account" onClick={(e) => (e.preventDefault(), navigate("/account"))}>
              Account and sign-ins
            </a>
            <a role="menuitem" href="/approve" onClick={(e) => (e.preventDefault(), navigate("/approve"))}>
              Approve a terminal sign-in
            </a>
            <button role="menuitem" type="button" onClick={() => (clearSession(), navigate("/signin"))}>
              Sign out
            </button>
          </div>
        )}
      </div>
    </header>
  );
}
