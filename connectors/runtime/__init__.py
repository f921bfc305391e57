"""How every source is called: HTTP client, timeouts, retries, breaker, bulkhead, fan-out, health, logs."""
