"""A gateway: several mlrm services started, watched and stopped as one.

manifest.py reads `services/<gateway>.yaml`; commands.py turns a service
into the command line that runs it; supervisor.py starts, restarts and stops
the processes; state.py records and shows what runs.
"""
