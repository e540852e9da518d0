"""The entry point the Functions worker indexes. It creates the app and registers the blueprints
of `functions/`; nothing else, so indexing imports no SDK and cannot fail on settings.

HTTP functions are anonymous to the Functions host: a function key would grant its holder
everything. Each request is authenticated in the app instead, by its Entra ID bearer token, and
acts as its caller (`functions/http.py`). The Event Grid trigger keeps its system key."""

import azure.functions as func

from functions import api, events, schedules, workers

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (api.bp, workers.bp, events.bp, schedules.bp):
    app.register_functions(blueprint)
