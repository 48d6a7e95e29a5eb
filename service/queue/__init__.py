"""The durable outbound job queue: SQL outbox and Redis Streams backends, handlers, worker."""
