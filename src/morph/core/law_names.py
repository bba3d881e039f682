"""The law family's vocabulary: what the experiment's validator accepts and the fitting code implements."""
LAWS = ("chinchilla", "inference-aware", "additive", "conditional", "kaplan")  # the forms in forms.FORMS
PAPER_LAWS = ("chinchilla", "inference-aware")  # the two the paper fits: the stage's default
TIES = ("none", "alpha-beta", "all")  # which exponents share one value
SOLVERS = ("lm", "huber-log")
AUTO = "auto"  # select.law: the form with the lowest cross-validated error in the law zoo
# What N counts: every parameter (Chinchilla, the paper) or the non-embedding ones (Kaplan); each a runs.csv and
# candidates.json column. fit.params_count may also be AUTO: the count with the lower cross-validated error.
PARAMS_COUNTS = {"total": "params", "non-embedding": "non_embedding_params"}
