"""The per-session event log: envelope, normalization of SDK messages, fan-out."""
