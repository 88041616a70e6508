"""The lab's long-lived services, one module each, started by the supervisor from the topology table.

Each module has a ``create_app`` (testable in-process) and a ``main(argv)`` the
supervisor runs in a child process (see :mod:`mlchaos.lab.procs`); what they
share (probe routes, argument parser, serving with metrics and the admin-token
check) is in :mod:`mlchaos.lab.services.scaffold`.  Adding a service is one
module here plus one entry in :data:`mlchaos.lab.topology.TABLE`.
"""
