"""The bottom layer: the experiment schema (one module per params section), grid expansion, artifact names
and the vocabularies the validator checks against. It imports no stage family and nothing of `workflow`.

Kept empty: every module here runs it, so anything written here would be code of every stage."""
