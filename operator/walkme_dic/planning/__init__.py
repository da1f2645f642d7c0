"""What each kind's reconcile should do, as pure functions that never talk to the API.

One module per kind, named like its types in ``api/`` and its kopf handlers in ``controllers/``:
``api/integration.py`` (the spec and status models), ``planning/integration.py`` (``plan()``: the new
status, the Job to create, the Events) and ``controllers/integration.py`` (gathers the inputs, applies the
decision). ``report_history.py`` keeps the record of replaced reports, queries and files;
``job_refusals.py`` backs off a Job the API server refused to create.
"""
