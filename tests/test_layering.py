"""Dependencies point one way: methods -> fairkit -> edflow -> torch, and no method imports another."""
from collections import Counter

from scripts import package_diagram


def test_no_forbidden_import_between_packages():
    counts = package_diagram.edges()
    assert counts[("iin", "edflow")] > 0 and counts[("fairkit", "edflow")] > 0  # the graph is really read
    assert package_diagram.violations(counts) == []


def test_a_method_importing_another_is_reported(tmp_path):
    for package in package_diagram.PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "latentdebias" / "m.py").write_text("def f():\n    from fairgen.models import GAN\n")
    (tmp_path / "edflow" / "m.py").write_text("import fairkit.nets\nfrom . import config\n")
    (tmp_path / "fairkit" / "m.py").write_text("import edflow, torch\n")
    counts = package_diagram.edges(str(tmp_path))
    assert counts == Counter({("latentdebias", "fairgen"): 1, ("edflow", "fairkit"): 1, ("fairkit", "edflow"): 1})
    assert package_diagram.violations(counts) == [("edflow", "fairkit"), ("latentdebias", "fairgen")]
