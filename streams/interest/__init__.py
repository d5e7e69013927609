"""The pure interest model: horizons, summary and clusters, the profile fold, scoring,
sentiment arithmetic and the profile codec. Imports numpy and the error module only."""
