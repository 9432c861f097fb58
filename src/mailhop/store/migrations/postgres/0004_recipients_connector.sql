-- mailhop store, version 4: an index of waiting recipients by send connector.
-- When a connector is deleted or disabled, its recipients go back to routing without a
-- scan of the whole queue. The index is on an expression on purpose: queries name it as
-- COALESCE(connector, '') to use it, and the claim's "connector IN (...)" cannot, so the
-- planner keeps walking recipients_due in next_attempt_at order for claims (with a plain
-- index on connector it sorted every recipient of the connector instead).
CREATE INDEX recipients_connector ON recipients ((COALESCE(connector, ''))) WHERE status IN ('ready', 'retry');
