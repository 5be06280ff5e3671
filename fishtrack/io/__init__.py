"""Input/output: video sources, writers, tables and provenance."""
