"""The ``mlsec`` command: a thin layer over the library. Only this package prints or exits."""
