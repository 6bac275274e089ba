"""A minimal Flask app, deployed by kuduhook."""

import sys

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return f"Hello from kuduhook! Python {sys.version.split()[0]}\n"


if __name__ == "__main__":
    app.run()
