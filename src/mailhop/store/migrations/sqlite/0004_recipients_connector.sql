-- mailhop store, version 4: an index of waiting recipients by send connector.
-- Waiting recipients by send connector: when a connector is deleted or disabled, its
-- recipients go back to routing without a scan of the whole queue.
CREATE INDEX recipients_connector ON recipients (connector) WHERE status IN ('ready', 'retry');
