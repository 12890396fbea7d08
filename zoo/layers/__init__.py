"""Reusable blocks shared by the model families (a family never re-implements a block that lives here)."""
