"""The law family's vocabulary, read by the experiment's validator without loading the fitting code."""
LAWS = ("chinchilla", "inference-aware")
TIES = ("none", "alpha-beta", "all")  # which exponents share one value
SOLVERS = ("lm", "huber-log")
