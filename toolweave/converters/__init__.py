"""Importers and exporters between our records and other projects' file formats."""
