"""Where each artifact lives, one module per producing stage family: the stage table builds its nodes from
these, every stage's CLI takes its default paths from them, and a consumer reads its producer's module.
Kept empty, since every module here runs it."""
