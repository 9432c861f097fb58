"""The SMTP wire protocol only: replies, the server state machine, the client session."""
