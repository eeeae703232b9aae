"""The engine's wire: ZeroMQ messages (schema v1: builders, checks, JSON Schema files), the
PUB publisher with sequence numbers and heartbeats, the REP control server, CURVE security."""
