"""Workflows: train, evaluate and reproduce, the top of the stack.

Each workflow composes the layers below it (data, features, models, evaluation,
registry, export); nothing below imports this package.
"""
