-- mailhop store, version 1.  Applied in one transaction by store.sqlite.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Send connectors, shared by every server that uses this store.  ``data`` holds the
-- connector keyed by Exchange's property names; ``secret`` the smart-host password.
CREATE TABLE send_connectors (
    guid       TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    data       TEXT NOT NULL,
    secret     TEXT,
    changed_at REAL NOT NULL
);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    received_at       REAL NOT NULL,
    sender            TEXT NOT NULL,
    size              INTEGER NOT NULL,
    message_id        TEXT,
    subject           TEXT,
    client_ip         TEXT,
    client_hostname   TEXT,
    receive_connector TEXT,
    auth_user         TEXT,
    origin_server     TEXT NOT NULL,
    kind              TEXT NOT NULL DEFAULT 'normal',
    smtputf8          INTEGER NOT NULL DEFAULT 0,
    eight_bit         INTEGER NOT NULL DEFAULT 0,
    expires_at        REAL NOT NULL,
    delay_at          REAL,
    crash_count       INTEGER NOT NULL DEFAULT 0
);

-- Bodies apart from the message rows, so scanning queues never reads them.
CREATE TABLE bodies (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data       BLOB NOT NULL
);

-- One row per recipient: its queue, its state and its lease.
-- status: ready | active | retry | suspended | poison | delivered | failed
CREATE TABLE recipients (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    address         TEXT NOT NULL,
    status          TEXT NOT NULL,
    queue           TEXT NOT NULL,
    connector       TEXT,
    delivery_type   TEXT NOT NULL,
    next_hop        TEXT NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     REAL
);
CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE status IN ('ready', 'retry');
CREATE INDEX recipients_message ON recipients (message_id);
CREATE INDEX recipients_queue ON recipients (queue, status);
CREATE INDEX recipients_lease ON recipients (lease_owner) WHERE status = 'active';

-- Queue state an administrator sees and steers (Retry, Suspended, LastError).
CREATE TABLE queues (
    queue            TEXT PRIMARY KEY,
    suspended        INTEGER NOT NULL DEFAULT 0,
    retry_until      REAL,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    first_retry_at   REAL,
    last_retry_at    REAL,
    last_error       TEXT,
    changed_at       REAL NOT NULL
);

-- Transport servers that use this store, with their heartbeat.
CREATE TABLE servers (
    name         TEXT PRIMARY KEY COLLATE NOCASE,
    incarnation  TEXT NOT NULL,
    fqdn         TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);

INSERT INTO meta (key, value) VALUES ('config_version', '0');
