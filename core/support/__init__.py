"""Live support: pure rules of the waiting queue and its texts."""
