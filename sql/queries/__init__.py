"""Saved ad hoc queries (mementos sql --query NAME), package data of mementos."""
