"""REST endpoints of the prompt registry."""

from __future__ import annotations

# --- registry CRUD, versions, label moves and history (staff) ---

# --- the label read agents call (hot path, served from the per-process registry) ---
