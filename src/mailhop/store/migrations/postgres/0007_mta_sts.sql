-- mailhop store, version 7: the MTA-STS policy cache (RFC 8461 section 5.1), one row per
-- policy domain, shared by every server of a cluster and kept across restarts. ``data``
-- holds the policy id, its text, when it was fetched and when it expires, as JSON.
CREATE TABLE mta_sts_policies (
    domain     TEXT PRIMARY KEY,
    data       TEXT NOT NULL
);
