"""The admin UI: server-rendered pages (Jinja2 + htmx) for people, in the API's app.

`shopkeeper.web.app.install(app)` adds the pages, the static files and the HTML error
pages. Nothing is imported here, so that `shopkeeper users ...` starts fast.
"""
