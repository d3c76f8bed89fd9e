"""The exercises' reference solutions and typical mistakes, one module per chapter.

Each module defines

- ``SOLUTIONS``: check name -> a solution written as a reader would write it;
- ``MISTAKES``: a list of ``(check name, wrong function, regex its message must match)``.

``tests/test_checks.py`` runs every check on every solution and every mistake from one table
(:data:`SOLUTIONS`, :data:`MISTAKES`): a new exercise only adds entries here.
"""

from check_cases import (
    ch01_mixture,
    ch02_elbo,
    ch03_estimators,
    ch04_vae,
    ch05_gae,
    ch06_comparison,
)

CHAPTERS = [ch01_mixture, ch02_elbo, ch03_estimators, ch04_vae, ch05_gae, ch06_comparison]
SOLUTIONS = {name: fn for module in CHAPTERS for name, fn in module.SOLUTIONS.items()}
MISTAKES = [entry for module in CHAPTERS for entry in module.MISTAKES]
