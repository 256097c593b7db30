"""The SCD's service modules: what the HTTP handlers call (no FastAPI in here but ``ApiError``)."""
