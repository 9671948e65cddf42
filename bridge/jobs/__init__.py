"""rq jobs of the bridge: module-level functions that take a message id and an envelope, never plaintext."""
