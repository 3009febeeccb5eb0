"""The one place tests share code from: waiting with deadlines, files and config
sets, real processes, brokers and gateways. Tests import from here, never from
another test module or a conftest (tests/test_imports.py holds that rule);
fixtures stay in conftest files and call these helpers."""
