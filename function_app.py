"""The entry point the Functions worker indexes. It creates the app and registers the blueprints
of `functions/`; nothing else, so indexing imports no SDK and cannot fail on settings."""

import azure.functions as func

from functions import api, events, schedules, workers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (api.bp, workers.bp, events.bp, schedules.bp):
    app.register_functions(blueprint)
