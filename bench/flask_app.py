"""The real-app scenario: a small Flask view answering JSON, as an API would.

    python -m wsgiserver bench.flask_app:app

Every server loads this same module for the ``flask`` scenario. The payload
lives in bench/apps.py (standard library) so the driver checks the answer
without importing Flask.
"""

from __future__ import annotations

from flask import Flask, jsonify

from bench.apps import FLASK_PAYLOAD

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(FLASK_PAYLOAD)
