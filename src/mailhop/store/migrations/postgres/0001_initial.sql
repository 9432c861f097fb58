-- mailhop store, version 1, for PostgreSQL.  Applied in one transaction.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE send_connectors (
    guid       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,
    secret     TEXT,
    changed_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX send_connectors_name ON send_connectors (lower(name));

CREATE TABLE messages (
    id                BIGINT PRIMARY KEY,
    received_at       DOUBLE PRECISION NOT NULL,
    sender            TEXT NOT NULL,
    size              BIGINT NOT NULL,
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
    expires_at        DOUBLE PRECISION NOT NULL,
    delay_at          DOUBLE PRECISION,
    crash_count       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE bodies (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data       BYTEA NOT NULL
);

CREATE TABLE recipients (
    id              BIGINT PRIMARY KEY,
    message_id      BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    address         TEXT NOT NULL,
    status          TEXT NOT NULL,
    queue           TEXT NOT NULL,
    connector       TEXT,
    delivery_type   TEXT NOT NULL,
    next_hop        TEXT NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     DOUBLE PRECISION
);
CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE status IN ('ready', 'retry');
CREATE INDEX recipients_message ON recipients (message_id);
CREATE INDEX recipients_queue ON recipients (queue, status);
CREATE INDEX recipients_lease ON recipients (lease_owner) WHERE status = 'active';

CREATE TABLE queues (
    queue            TEXT PRIMARY KEY,
    suspended        INTEGER NOT NULL DEFAULT 0,
    retry_until      DOUBLE PRECISION,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    first_retry_at   DOUBLE PRECISION,
    last_retry_at    DOUBLE PRECISION,
    last_error       TEXT,
    changed_at       DOUBLE PRECISION NOT NULL
);

CREATE TABLE servers (
    name         TEXT PRIMARY KEY,
    incarnation  TEXT NOT NULL,
    fqdn         TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);

INSERT INTO meta (key, value) VALUES ('config_version', '0');
