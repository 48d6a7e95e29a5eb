"""The kervan service: Starlette app, storage and Redis adapters, workers, CLI."""
