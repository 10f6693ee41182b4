"""Durable state behind one ``Store`` protocol; SQLite today, PostgreSQL later."""
