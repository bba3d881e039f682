"""Data stages: sample DCLM documents, train the tokenizer and encode the sample."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ()
