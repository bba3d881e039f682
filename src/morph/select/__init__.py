"""Selection stages: candidate shapes near N_C, ranked by predicted loss under the budgets."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ('pareto_figure',)
