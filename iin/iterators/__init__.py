"""IIN's training loops: ``ae.Trainer``, ``clf.Trainer``, ``iin.Trainer`` and ``iin.FactorTrainer``."""
