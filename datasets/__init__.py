"""Loaders for the published datasets in their real on-disk formats (installed as `zoo.datasets`).

Each dataset yields batch-first tensors as the models take them; nothing is downloaded.
"""
