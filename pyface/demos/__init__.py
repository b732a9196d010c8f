"""The embedded demos, ``pyface demo <name>`` (top layer, beside pyface.cli: a demo
trains with pyface.train, labels with pyface.label and evaluates with pyface.eval):

- :mod:`~pyface.demos.mtl` (``pyface demo``, the default): synthetic faces -> a small
  multitask model -> pose MAE, NME, verification accuracy, plots;
- :mod:`~pyface.demos.hmtl`: HopeNet vs HMTL 2x2 puzzling in the small-data regime;
- :mod:`~pyface.demos.label`: Algorithm 1 with hidden labels, then Algorithm 2;
- :mod:`~pyface.demos.eval`: synthetic copies of every evaluation format through
  ``pyface eval all``'s readers and report;
- :mod:`~pyface.demos.ablations`: the papers' claimed effects (Table 9's lambda_P, Table
  4's pose margin, Algorithm 1's views, HMTL) measured over seeds.

:mod:`~pyface.demos.rendered` holds the in-memory synthetic faces they share.
"""
