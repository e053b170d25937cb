"""The lifecycle management system of Decree 68/2024 Art. 24–28 (FastAPI + SQLAlchemy)."""
