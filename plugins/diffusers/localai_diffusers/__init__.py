"""diffusers backend for localai: image generation behind /v1/images/*."""
