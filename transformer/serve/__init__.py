"""The attention explorer: a small web app (app.py) and its static page (static/)."""
