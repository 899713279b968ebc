"""The app's blueprints: pairing, pages, api, events."""
