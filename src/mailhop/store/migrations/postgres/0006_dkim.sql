-- mailhop store, version 6: DKIM signing configs, one per sending domain.
-- ``data`` holds the config (selectors, public keys, rotation state) as JSON; the private
-- keys are apart in ``private_keys`` (JSON, selector -> key sealed with the server's
-- secret key), so reading configs never reads them.
CREATE TABLE dkim_configs (
    domain       TEXT PRIMARY KEY,
    data         TEXT NOT NULL,
    private_keys TEXT NOT NULL,
    changed_at   DOUBLE PRECISION NOT NULL
);
INSERT INTO meta (key, value) VALUES ('dkim_version', '0');
