"""The web boundary: checks and headers every HTTP request and response passes (see each module)."""
