"""IIN's models: ``ae.Model`` (stage 1), ``clf.Model`` (a classifier as stage 1), ``iin.VectorTransformer`` and
``iin.FactorTransformer`` (stage 2)."""
