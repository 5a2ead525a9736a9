"""Headless training and evaluation on Landslide4Sense ``.h5`` patches (``python -m training``).

It writes the model packages that :mod:`landslide_engine` and the QGIS plugin run, and never
imports qgis.
"""
