-- mailhop store, version 3: tokens of the admin API (only their SHA-256 is kept).

CREATE TABLE admin_tokens (
    name       TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    read_only  INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);
