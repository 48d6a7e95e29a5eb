"""Lua scripts for Redis, loaded as package resources by ``service.backends.lua``."""
