"""The routes, one module per resource; :func:`stylenorm.server.app.create_app` includes them."""
