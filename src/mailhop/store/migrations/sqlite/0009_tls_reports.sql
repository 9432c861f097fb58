-- mailhop store, version 9: TLS reporting (RFC 8460). Sessions counted per UTC day, policy
-- domain and policy (the RFC's policy object as JSON); every server of a cluster adds its
-- counts to the same rows. ``tls_reports_sent`` holds one row per domain and day once a
-- server has taken that report: the key is what makes a cluster send it once.
CREATE TABLE tls_report_counts (
    day       TEXT NOT NULL,
    domain    TEXT NOT NULL,
    policy    TEXT NOT NULL,
    success   INTEGER NOT NULL,
    failures  TEXT NOT NULL,
    PRIMARY KEY (day, domain, policy)
);
CREATE TABLE tls_reports_sent (
    day          TEXT NOT NULL,
    domain       TEXT NOT NULL,
    report_id    TEXT NOT NULL,
    server       TEXT NOT NULL,
    sent_at      DOUBLE PRECISION NOT NULL,
    destinations TEXT NOT NULL,
    PRIMARY KEY (day, domain)
);
