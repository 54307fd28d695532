"""mlsec: secure the supply chain of machine-learning models.

The library is the product; the ``mlsec`` command is a thin layer over it. Each capability lives
in its own subpackage (``mlsec.artifact``, ``mlsec.scan``, ``mlsec.signing``, …) with a small
public API.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
