"""The bridge between the zones: envelopes in outboxes, the relay, rq queues and workers, and the simulated peers."""
