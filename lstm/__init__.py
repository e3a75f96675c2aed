"""lstm package."""
