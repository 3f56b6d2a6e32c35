"""Recipes: complete, reproducible training runs behind ``purenet train <name>``.

Each recipe module has ``add_arguments(parser)`` and ``run(args) -> dict`` (the
metrics it wrote to ``<out>/metrics.json``).
"""
