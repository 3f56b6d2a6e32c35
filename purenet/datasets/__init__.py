"""Data files shipped with purenet; read them through ``purenet.data`` (see README.md here)."""
