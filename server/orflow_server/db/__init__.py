"""The only place with SQL text: one module per aggregate, plus the migrations."""
