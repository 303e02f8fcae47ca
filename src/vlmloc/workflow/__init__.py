"""The glue between Snakemake and the library, above everything it calls: only the rule
scripts and the .smk files import it.

- ``logs``: a rule script's log file;
- ``jobs``: a model job's device and adapter;
- ``checks``: cross-key config checks, each naming its key;
- ``settings``: an experiment's config entry as its model jobs get it;
- ``resources``, ``memory``: a job's GPUs, memory, runtime and the batch that fits;
- ``targets``: the default target's files.
"""
