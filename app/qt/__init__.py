"""The PySide6 desktop app: windows, Qt models and workers over app.core and app.store (no logic of its own)."""
