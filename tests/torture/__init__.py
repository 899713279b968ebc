"""Regression tests for the defects of issue #14 (an attack on the kit): one test per
defect or sub-item, named ``test_d<N>...``, each asserting the kit's correct behaviour.

Defects still present are marked ``xfail(strict=True)`` with the issue's number, so
the suite stays green and each flips to a failure (remove the mark) once fixed.
"""
