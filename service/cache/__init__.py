"""Cache-aside for hot reads, shared by every process through the state backend."""
