"""StemDesk's lab: the research code that built and measured the shipped models, outside the installed package.

It imports stemdesk; stemdesk never imports it (an import-linter contract in pyproject.toml). Run its modules from
the repository root, e.g. ``python -m lab.default_models stemdesk-4stem-lite``; lab/README.md says what is here.
"""
