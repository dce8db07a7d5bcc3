"""Persistence: SQLAlchemy Core tables and repositories implementing packyard.domain.ports."""
