"""Small shared helpers (offline sentence encoder, ...)."""
