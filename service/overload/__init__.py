"""Degrade mode under overload: shed low-priority work first, keep the important work going."""
