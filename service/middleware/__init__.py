"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and add a task per request)."""
