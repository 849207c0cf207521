"""A stand-in for the book's Thoughts Backend, for bench/book_setting.py: the same stack
(Flask, a Flask-RESTPlus API with a model, Flask-SQLAlchemy, one uWSGI process), written for this
benchmark and reading the benchmark's own thoughts table. Only the two routes it measures:

- GET /admin/version/: the framework's floor, a fixed JSON answer (what /admin/version/ is
  in our services: no database, no work);
- GET /api/thoughts/<id>/: one thought through the ORM and a marshalled model, as the book's
  `ThoughtModel.query.get(...)` behind `@api.marshal_with(thought_model)` did.

DATABASE_URL: an SQLAlchemy URL (`postgresql+psycopg2://...`, the book's driver, or `sqlite:///...`).
"""

from __future__ import annotations

import os

from flask import Flask
from flask_restx import Api, Namespace, Resource, fields
from flask_sqlalchemy import SQLAlchemy

VERSION = "book-reference"

application = Flask(__name__)
application.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
application.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
db = SQLAlchemy(application)


class ThoughtModel(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "thoughts"
    id = db.Column(db.BigInteger, primary_key=True)
    username = db.Column(db.String(50))
    text = db.Column(db.String(1000))
    timestamp = db.Column(db.DateTime(timezone=True))


api = Api(application, version=VERSION, title="Thoughts Backend (book reference)")
thoughts = Namespace("api", description="thoughts")
api.add_namespace(thoughts, path="/api")

thought_model = thoughts.model(
    "Thought",
    {
        "id": fields.Integer(),
        "username": fields.String(),
        "text": fields.String(),
        "timestamp": fields.DateTime(),
    },
)


@thoughts.route("/thoughts/<int:thought_id>/")
class Thought(Resource):  # type: ignore[misc]
    @thoughts.marshal_with(thought_model)
    def get(self, thought_id: int) -> ThoughtModel:
        thought = db.session.get(ThoughtModel, thought_id)
        if thought is None:
            thoughts.abort(404, f"thought {thought_id} does not exist")
        return thought


@application.route("/admin/version/")
def version() -> dict[str, str]:
    return {"version": VERSION, "commit": "none"}
