"""The version of mdforecast (``mdforecast.__version__``), in a module of its own so that every other
module can record it without importing the package top."""

__version__ = "0.1.0"
