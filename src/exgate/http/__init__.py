"""The HTTP service: FastAPI app factory, routes and problem+json errors."""
