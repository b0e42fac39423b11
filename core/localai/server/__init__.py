"""The HTTP server: the FastAPI app, one folder per protocol under ``api/`` translating into the engine and back,
the web UI, metrics, jobs and shutdown."""
