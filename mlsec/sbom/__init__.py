"""CycloneDX 1.6 ML-BOM of a model artifact: the model with its model card, its files with their
digests, its datasets, and its Python dependencies with their known vulnerabilities."""
