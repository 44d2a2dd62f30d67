"""The report's Jinja templates, package data of mementos.warehouse."""
