"""The phone page: a Flask app served by the kit daemon."""
