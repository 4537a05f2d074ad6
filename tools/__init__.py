"""The operator's tools, beside the lesson rather than in it: each a command of its own.

    bench.py       `make bench`: what a page costs, against a bare Werkzeug "hello"
    reencrypt.py   `make reencrypt`: every row sealed again with the newest key

Run from the project's folder as modules (`.venv/bin/python -m tools.reencrypt`), so that
they import the app's modules as the app does.
"""
