"""The plugin contract's helpers: what faults, targets and platforms share with the engine.

:mod:`mlchaos.plugin` holds the base classes (Fault, Probe, Target, the spec
models).  This package holds the small pieces of arithmetic and bookkeeping
both sides of that contract need, so that a plugin never imports the engine
(``tests/test_import_rules.py`` enforces it) and the engine can be replaced
or reorganised without touching a plugin:

* :mod:`~mlchaos.contract.blast`: how many of N things a fault may hit.
* :mod:`~mlchaos.contract.lease`: the :class:`Lease` a fault is held under,
  and the crash-test kill points of write-ahead injection.
* :mod:`~mlchaos.contract.proc`: whether a PID still runs (and is the same process).

Each module imports only the standard library (``proc`` uses psutil inside a
function), so importing the contract stays cheap.
"""
