"""IIN's losses: ``ae.LossPND`` (stage 1), ``iin.Loss`` and ``iin.FactorLoss`` (stage 2)."""
