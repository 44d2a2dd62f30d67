"""The bundled SQL models, package data of mementos (mementos.models)."""
