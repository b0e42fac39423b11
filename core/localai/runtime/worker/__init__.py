"""Worker processes: each loaded model runs in its own process, the API process never imports an engine."""
