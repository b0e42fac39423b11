"""Which backend serves a model: plugin discovery, the backend registry and its dispatch to declared loaders,
the models folder (catalog), and the one set-up they share (``bootstrap``)."""
