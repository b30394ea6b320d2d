"""Curating the data: verification (verify), the verified dataset and its card (verify_export,
dataset_card, dataset_stats), the export formats (export)."""
