"""The stored tables' and views' SQL, package data of mementos (mementos.sql): found with importlib.resources."""
