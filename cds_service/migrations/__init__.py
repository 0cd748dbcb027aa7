"""Alembic migrations of the card and feedback store (see store.py); run at start-up by Store.upgrade."""
