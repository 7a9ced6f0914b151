"""berth's alembic migrations; a package so that an installed berth can find them."""
