"""Getting mail to the next hop: endpoints (MX or smart hosts), connections, reuse."""
