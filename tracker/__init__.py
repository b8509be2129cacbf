"""The tracker application: CLI, ingest pipeline, configuration and adapters around the engine."""
