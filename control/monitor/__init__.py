"""Monitoring: offline accuracy across versions (`offline`), online accuracy from the prediction
log and realised outcomes (`predictions`, `outcomes`, `attribution`, `online`), feature drift
between training profiles and serving traffic (`psi`, `drift`, with the promotion gate
`drift.promotion_gate`), and the HTML report (`report`, `plots`; its table text, `cells`, is
shared with the terminal tables of `control monitor`). Every finding is a `flags.Flag`.

Modules are imported directly (`from control.monitor.drift import promotion_gate`) so that a
caller such as `control promote` does not pay for matplotlib.
"""
