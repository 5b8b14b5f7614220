-- Issue 11: running totals so that submitting a job reads one row instead of aggregating history.
-- ledger_balances: per network and account, the sum of amount_micro of its ledger events (pool: account_kind 1, user_id '';
-- member: account_kind 2 and the member's user id). relay_usage: per network and UTC calendar month (month_start_ms),
-- the sum of relay_bytes of its execution records. Both are written in the same transaction as the events/records they
-- sum (LedgerRepository.AppendAsync / InsertMeteringAsync); ReconcileLedger checks them against the sums. Backfilled here.
CREATE TABLE ledger_balances (
    network_id     TEXT NOT NULL,
    account_kind   INTEGER NOT NULL,
    user_id        TEXT NOT NULL,
    balance_micro  INTEGER NOT NULL,
    PRIMARY KEY (network_id, account_kind, user_id)
);
INSERT INTO ledger_balances (network_id, account_kind, user_id, balance_micro)
SELECT network_id, account_kind, CASE WHEN account_kind = 1 THEN '' ELSE user_id END, SUM(amount_micro)
FROM ledger_events
WHERE account_kind = 1 OR (account_kind = 2 AND user_id <> '')
GROUP BY network_id, account_kind, CASE WHEN account_kind = 1 THEN '' ELSE user_id END;
CREATE TABLE relay_usage (
    network_id     TEXT NOT NULL,
    month_start_ms INTEGER NOT NULL,
    relay_bytes    INTEGER NOT NULL,
    PRIMARY KEY (network_id, month_start_ms)
);
INSERT INTO relay_usage (network_id, month_start_ms, relay_bytes)
SELECT network_id, CAST(strftime('%s', datetime(create_time_ms / 1000, 'unixepoch', 'start of month')) AS INTEGER) * 1000, SUM(relay_bytes)
FROM job_meterings
GROUP BY network_id, CAST(strftime('%s', datetime(create_time_ms / 1000, 'unixepoch', 'start of month')) AS INTEGER) * 1000;
