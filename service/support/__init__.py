"""Live support: the waiting queue, rooms whose messages are never lost, and the WebSocket desk."""
