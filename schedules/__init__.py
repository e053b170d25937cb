"""APScheduler triggers: each job calls one decision function with an injected clock."""
