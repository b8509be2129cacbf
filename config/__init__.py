"""What the tracker is configured from: environment settings, and the loaders of every input file
(rulebooks, unit registries, holiday lists). Below the adapters, above the engine."""
