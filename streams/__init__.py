"""Kafka and Faust adapters around the pure engine, and the local KRaft broker."""
