// Small accessible building blocks shared by every page: buttons, badges, fields with labels, dialogs (native <dialog>),
// tabs, empty/loading/error states, copy buttons, and the async-data hook. Styles are in styles.css (no inline styles:
// the server's CSP allows none).
import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useCallback, useEffect, useId, useRef, useState } from "preact/hooks";
import { describeRpcError, userMessage } from "@meshai/client";

type Tone = "neutral" | "good" | "warn" | "bad" | "info";

export function Button(props: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: "primary" | "secondary" | "danger" | "ghost"; busy?: boolean }) {
  const { variant = "secondary", busy, children, class: cls, disabled, ...rest } = props;
  return (
    <button type="button" {...rest} class={`btn btn-${variant} ${cls ?? ""}`} disabled={disabled || busy} aria-busy={busy || undefined}>
      {busy && <span class="spinner spinner-sm" aria-hidden="true" />}
      {children}
    </button>
  );
}

export function Badge({ tone = "neutral", children, title }: { tone?: Tone; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

export function Dot({ tone }: { tone: Tone }) {
  return <span class={`dot dot-${tone}`} aria-hidden="true" />;
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <div class="loading" role="status">
      <span class="spinner" aria-hidden="true" />
      <span>{label}…</span>
    </div>
  );
}

export function Skeleton({ rows = 3 }: { rows?: number }) {
  return (
    <div class="skeleton-list" role="status" aria-label="Loading">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} class="skeleton" />
      ))}
    </div>
  );
}

export function Empty({ title, children, action }: { title: string; children?: ComponentChildren; action?: ComponentChildren }) {
  return (
    <div class="empty">
      <svg viewBox="0 0 48 48" width="48" height="48" aria-hidden="true">
        <circle cx="12" cy="12" r="4" />
        <circle cx="36" cy="12" r="4" />
        <circle cx="12" cy="36" r="4" />
        <circle cx="36" cy="36" r="4" />
        <path d="M12 12 36 36M36 12 12 36" />
      </svg>
      <h3>{title}</h3>
      {children && <p>{children}</p>}
      {action}
    </div>
  );
}

/** An API error as the person should read it: the server's message, plus field and precondition details. */
export function ErrorBanner({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const view = describeRpcError(error);
  return (
    <div class="alert alert-bad" role="alert" data-reason={view.reason || view.codeName}>
      <div>
        <strong>{userMessage(error)}</strong>
        {view.fieldViolations.length > 0 && (
          <ul>
            {view.fieldViolations.map((v) => (
              <li key={v.field}>
                <code>{v.field}</code>: {v.description}
              </li>
            ))}
          </ul>
        )}
        {view.preconditionViolations
          .filter((v) => v.description !== view.message)
          .map((v) => (
            <p key={v.type + v.subject}>{v.description}</p>
          ))}
      </div>
      {onRetry && (
        <Button variant="ghost" onClick={onRetry}>
          Retry
        </Button>
      )}
    </div>
  );
}

export function Notice({ tone = "info", children }: { tone?: Tone; children: ComponentChildren }) {
  return (
    <div class={`alert alert-${tone}`} role={tone === "bad" ? "alert" : "status"}>
      <div>{children}</div>
    </div>
  );
}

/** A labelled control: renders the label, the hint and wires ids for screen readers. */
export function Field({ label, hint, children }: { label: string; hint?: ComponentChildren; children: (id: string, describedBy?: string) => ComponentChildren }) {
  const id = useId();
  const hintId = hint ? id + "-hint" : undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children(id, hintId)}
      {hint && (
        <div class="hint" id={hintId}>
          {hint}
        </div>
      )}
    </div>
  );
}

export function Card({ title, actions, children, class: cls }: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string }) {
  return (
    <section class={`card ${cls ?? ""}`}>
      {(title || actions) && (
        <header class="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div class="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

/** A table that may scroll sideways: a focusable, labelled region so keyboard users can scroll it too. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}

/** One column of a {@link DataTable}: its header, and the cell it renders for a row. */
export interface Column<T> {
  /** Header text; also the cell's data-label, which the phone layout shows beside each value. */
  label: string;
  /** A numeric column: right-aligned header and cells. */
  num?: boolean;
  /** Extra classes on the cells (e.g. "mono small"). */
  cellClass?: string;
  /** Leave the column out (e.g. admin-only actions). */
  hidden?: boolean;
  cell: (row: T) => ComponentChildren;
}

/**
 * The dashboard's one table: a labelled, scrollable region around a responsive table (rows become cards on a
 * phone, each cell labelled by its column). Every list of records goes through it so headers, labels and
 * alignment stay consistent.
 */
export function DataTable<T>({
  label,
  rows,
  rowKey,
  columns,
  rowProps,
}: {
  label: string;
  rows: readonly T[];
  rowKey: (row: T, index: number) => string | number;
  columns: Column<T>[];
  /** Attributes for a row's <tr> (data-* hooks, a click handler and its class). */
  rowProps?: (row: T) => Record<string, unknown>;
}) {
  const cols = columns.filter((c) => !c.hidden);
  const cellClass = (c: Column<T>) => [c.num ? "num" : "", c.cellClass ?? ""].filter(Boolean).join(" ") || undefined;
  return (
    <TableWrap label={label}>
      <table class="responsive" aria-label={label}>
        <thead>
          <tr>
            {cols.map((c) => (
              <th key={c.label} class={c.num ? "num" : undefined}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={rowKey(r, i)} {...(rowProps?.(r) ?? {})}>
              {cols.map((c) => (
                <td key={c.label} data-label={c.label} class={cellClass(c)}>
                  {c.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

export function Stat({ label, value, sub }: { label: string; value: ComponentChildren; sub?: ComponentChildren }) {
  return (
    <div class="stat">
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}

/** A modal dialog on the native <dialog> element (focus trap, Escape, inert background for free). */
export function Dialog({ open, title, onClose, children, footer, wide }: { open: boolean; title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} class={`dialog ${wide ? "dialog-wide" : ""}`} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      {open && (
        <>
          <header class="dialog-head">
            <h2 id={titleId}>{title}</h2>
            <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          <div class="dialog-body">{children}</div>
          {footer && <footer class="dialog-foot">{footer}</footer>}
        </>
      )}
    </dialog>
  );
}

/** Asks before doing something that cannot be undone. */
export function Confirm(props: { open: boolean; title: string; children: ComponentChildren; confirm: string; onConfirm: () => Promise<unknown>; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await props.onConfirm();
      props.onClose();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog
      open={props.open}
      title={props.title}
      onClose={props.onClose}
      footer={
        <>
          <Button onClick={props.onClose}>Cancel</Button>
          <Button variant="danger" busy={busy} onClick={run}>
            {props.confirm}
          </Button>
        </>
      }
    >
      {props.children}
      <ErrorBanner error={error} />
    </Dialog>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <Button
      variant="secondary"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          // The clipboard needs a user gesture and permission; the text stays selectable.
        }
      }}
      aria-live="polite"
    >
      {done ? "Copied" : label}
    </Button>
  );
}

export interface TabItem {
  id: string;
  label: ComponentChildren;
  href: string;
}

/** Navigation tabs (links, so each tab has a URL); the current one is marked aria-current. */
export function TabNav({ items, current, label, onNavigate }: { items: TabItem[]; current: string; label: string; onNavigate: (href: string) => void }) {
  return (
    <nav class="tabs" aria-label={label}>
      {items.map((t) => (
        <a
          key={t.id}
          href={t.href}
          class={t.id === current ? "tab tab-current" : "tab"}
          aria-current={t.id === current ? "page" : undefined}
          onClick={(e) => {
            if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
            e.preventDefault();
            onNavigate(t.href);
          }}
        >
          {t.label}
        </a>
      ))}
    </nav>
  );
}

/**
 * One user action at a time: which one is running (`busy`), its error, and which finished last (`done`).
 * `on(name, work)` makes an event handler (forms: it prevents the submit navigation).
 */
export function useAction() {
  const [busy, setBusy] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();
  const run = async (name: string, work: () => Promise<unknown>) => {
    setBusy(name);
    setError(undefined);
    setDone(undefined);
    try {
      await work();
      setDone(name);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(undefined);
    }
  };
  const on = (name: string, work: () => Promise<unknown>) => (e?: Event) => {
    e?.preventDefault();
    void run(name, work);
  };
  return { busy, error, done, run, on };
}

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads data, re-running when `deps` change; keeps the last data while reloading (no flicker). */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Re-renders every `ms` (relative times like "5 s ago"). */
export function useTick(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Saves a Blob as a file download. */
export function download(data: BlobPart[], fileName: string, type: string): void {
  const url = URL.createObjectURL(new Blob(data, { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
